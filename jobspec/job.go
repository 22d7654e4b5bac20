package jobspec

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Names inside the rendered group.
const (
	TaskLeaderd = "leaderd"
	TaskApp     = "app"
	TaskRole    = "role"
	PortStatus  = "status" // leaderd's status server: /v1/leader, /v1/health
	PortApp     = "app"
	// LeaderServiceSuffix names the Nomad-registered Consul service whose
	// check passes on the leader only: <service>-leader.
	LeaderServiceSuffix = "-leader"
)

// VariablePath is where leaderd's nomad-vars publisher keeps the leader
// record for this job's group.
func (o Options) VariablePath() string {
	o = o.withDefaults()
	return "nomad/jobs/" + o.Job + "/" + o.Group
}

// leaderdArgs are the arguments of `leaderd run` (the child's command
// line excluded).
func (o Options) leaderdArgs() []string {
	publish := "consul-tags"
	if o.Mode == ModeNative {
		publish = "nomad-vars"
	}
	args := []string{
		"run",
		"-service", o.Service,
		"-listen", "0.0.0.0:${NOMAD_PORT_" + PortStatus + "}",
		"-address", "${NOMAD_HOST_ADDR_" + PortStatus + "}",
		"-publish", publish,
	}
	if len(o.Tags) > 0 && o.Mode != ModeNative {
		args = append(args, "-tags", strings.Join(o.Tags, ","))
	}
	return args
}

// roleTemplate renders LEADERD_ROLE=leader on the allocation the record
// names, follower everywhere else — also when the record is missing or
// cleared (nomadVarExists first: nomadVar on a missing path would block the
// task until someone writes it).
func (o Options) roleTemplate() string {
	p := o.VariablePath()
	return fmt.Sprintf(`{{- $role := "follower" -}}
{{- if nomadVarExists %q -}}
{{- with nomadVar %q -}}
{{- if eq .leader_id.Value (env "NOMAD_ALLOC_ID") }}{{ $role = "leader" }}{{ end -}}
{{- end -}}
{{- end }}
LEADERD_ROLE={{ $role }}
`, p, p)
}

// Job builds the job all renderings come from. o must be validated.
func (o Options) job() *api.Job {
	job := &api.Job{
		ID:          new(o.Job),
		Name:        new(o.Job),
		Type:        new("service"),
		Datacenters: o.Datacenters,
		Update: &api.UpdateStrategy{
			// One at a time: the other candidates keep a leader (or
			// take over within one round trip) while an allocation
			// is replaced.
			MaxParallel:      new(1),
			HealthCheck:      new("checks"),
			MinHealthyTime:   new(10 * time.Second),
			HealthyDeadline:  new(5 * time.Minute),
			ProgressDeadline: new(10 * time.Minute),
			AutoRevert:       new(true),
		},
		TaskGroups: []*api.TaskGroup{o.group()},
	}
	if o.Namespace != "" {
		job.Namespace = new(o.Namespace)
	}
	return job
}

func (o Options) group() *api.TaskGroup {
	appPort := api.Port{Label: PortApp}
	if o.Image != "" {
		appPort.To = o.AppPort
	}
	g := &api.TaskGroup{
		Name:  new(o.Group),
		Count: new(o.Count),
		Networks: []*api.NetworkResource{{
			DynamicPorts: []api.Port{{Label: PortStatus}, appPort},
		}},
		RestartPolicy: &api.RestartPolicy{
			Attempts: new(3),
			Interval: new(5 * time.Minute),
			Delay:    new(15 * time.Second),
			Mode:     new("delay"),
		},
	}
	if o.Mode != ModeNative {
		g.Services = []*api.Service{{
			Name:      o.Service + LeaderServiceSuffix,
			PortLabel: PortApp,
			Provider:  "consul",
			Tags:      o.Tags,
			Checks:    []api.ServiceCheck{leaderCheck()},
		}}
	}
	switch o.Mode {
	case ModeWrap:
		g.Tasks = []*api.Task{o.wrapTask()}
	case ModeSidecar:
		g.Tasks = []*api.Task{o.sidecarTask(), o.appTask()}
	case ModeNative:
		g.Tasks = []*api.Task{o.sidecarTask(), o.appTask(), o.roleTask()}
	}
	return g
}

// leaderCheck passes on the leader only: leaderd's /v1/leader answers 200
// there and 503 on followers.
func leaderCheck() api.ServiceCheck {
	return api.ServiceCheck{
		Name:      "leader",
		Type:      "http",
		PortLabel: PortStatus,
		Path:      "/v1/leader",
		Interval:  5 * time.Second,
		Timeout:   2 * time.Second,
		// Followers answer 503 by design: their failing check must not
		// fail deployments.
		OnUpdate: "ignore",
	}
}

func (o Options) leaderdEnv() map[string]string {
	return map[string]string{
		"CONSUL_HTTP_ADDR":   o.ConsulAddr,
		"LEADERD_LOG_FORMAT": "json",
	}
}

// wrapTask is leaderd with the app as its child.
func (o Options) wrapTask() *api.Task {
	args := append(o.leaderdArgs(), "--", o.Command)
	args = append(args, o.Args...)
	t := &api.Task{
		Name:        TaskLeaderd,
		Env:         o.leaderdEnv(),
		KillSignal:  "SIGTERM",
		KillTimeout: new(o.KillTimeout),
		Resources:   &api.Resources{CPU: new(o.CPU), MemoryMB: new(o.MemoryMB)},
	}
	if o.Image != "" {
		t.Driver = "docker"
		t.Config = map[string]any{
			"image":      o.Image,
			"entrypoint": []string{o.LeaderdPath},
			"args":       args,
			"ports":      []string{PortStatus, PortApp},
		}
	} else {
		t.Driver = "exec"
		t.Config = map[string]any{"command": o.LeaderdPath, "args": args}
	}
	return t
}

// sidecarTask is leaderd started before the app and kept running beside it.
func (o Options) sidecarTask() *api.Task {
	t := &api.Task{
		Name:        TaskLeaderd,
		Driver:      "exec",
		Lifecycle:   &api.TaskLifecycle{Hook: "prestart", Sidecar: true},
		Config:      map[string]any{"command": o.LeaderdPath, "args": o.leaderdArgs()},
		Env:         o.leaderdEnv(),
		KillSignal:  "SIGTERM",
		KillTimeout: new(o.KillTimeout),
		Resources:   &api.Resources{CPU: new(50), MemoryMB: new(64)},
	}
	if o.Mode == ModeNative {
		// NOMAD_TOKEN (workload identity) for the nomad-vars publisher,
		// which reaches Nomad through the Task API socket: named by
		// NOMAD_UNIX_ADDR since Nomad 1.10.3, found at
		// $NOMAD_SECRETS_DIR/api.sock on 1.5.0-1.10.2.
		t.Identity = &api.WorkloadIdentity{Env: true}
	}
	return t
}

// appTask is the always-running app of sidecar and native modes.
func (o Options) appTask() *api.Task {
	t := &api.Task{
		Name:       TaskApp,
		KillSignal: "SIGTERM",
		Resources:  &api.Resources{CPU: new(o.CPU), MemoryMB: new(o.MemoryMB)},
	}
	if o.Image != "" {
		t.Driver = "docker"
		t.Config = map[string]any{"image": o.Image, "ports": []string{PortApp}}
		if o.Command != "" {
			t.Config["command"] = o.Command
		}
		if len(o.Args) > 0 {
			t.Config["args"] = o.Args
		}
	} else {
		t.Driver = "exec"
		t.Config = map[string]any{"command": o.Command}
		if len(o.Args) > 0 {
			t.Config["args"] = o.Args
		}
	}
	return t
}

// roleTask carries the Nomad-native service whose tag says leader or
// follower. Service tags are fixed once registered, so the template
// restarts this tiny task (not leaderd, not the app) when the record
// changes, and the service comes back with the new tag.
func (o Options) roleTask() *api.Task {
	t := &api.Task{
		Name: TaskRole,
		Services: []*api.Service{{
			Name:      o.Service,
			PortLabel: PortApp,
			Provider:  "nomad",
			Tags:      append([]string{"${LEADERD_ROLE}"}, o.Tags...),
			Checks:    []api.ServiceCheck{leaderCheck()},
		}},
		Templates: []*api.Template{{
			EmbeddedTmpl: new(o.roleTemplate()),
			DestPath:     new("local/role.env"),
			Envvars:      new(true),
			ChangeMode:   new("restart"),
			Splay:        new(time.Second),
		}},
		Resources: &api.Resources{CPU: new(10), MemoryMB: new(16)},
	}
	if o.Image != "" {
		t.Driver = "docker"
		t.Config = map[string]any{"image": "busybox:1.36", "command": "/bin/sh", "args": []string{"-c", idleScript}}
	} else {
		t.Driver = "exec"
		t.Config = map[string]any{"command": "/bin/sh", "args": []string{"-c", idleScript}}
	}
	return t
}

// idleScript keeps the role task alive doing nothing, in any POSIX sh:
// `sleep infinity` is a GNU coreutils extension that other sleeps
// (macOS's, older or minimal busybox builds) refuse. Sleeping in the
// background and waiting lets the trap run at once on SIGTERM: the task
// stops without waiting out its kill_timeout, even as a container's PID 1,
// where a signal with no handler is ignored, so the service comes back
// with its new tag sooner.
const idleScript = "trap 'kill $!; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
