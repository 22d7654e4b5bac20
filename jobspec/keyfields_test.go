package jobspec

import (
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

// keyJob holds the fields the HCL and JSON forms must agree on, extracted
// from either side.
type keyJob struct {
	ID, Namespace, Type string
	Datacenters         []string
	Update              keyUpdate
	Groups              []keyGroup
}

type keyUpdate struct {
	MaxParallel                                       int
	HealthCheck                                       string
	MinHealthyTime, HealthyDeadline, ProgressDeadline time.Duration
	AutoRevert                                        bool
}

type keyGroup struct {
	Name     string
	Count    int
	Ports    map[string]int // label → to
	Restart  keyRestart
	Services []keyService
	Tasks    []keyTask
}

type keyRestart struct {
	Attempts        int
	Interval, Delay time.Duration
	Mode            string
}

type keyService struct {
	Name, Provider, Port string
	Tags                 []string
	Checks               []keyCheck
}

type keyCheck struct {
	Name, Type, Port, Path string
	Interval, Timeout      time.Duration
	OnUpdate               string
}

type keyTask struct {
	Name, Driver, KillSignal string
	KillTimeout              time.Duration
	Lifecycle                string // "prestart sidecar=true"
	IdentityEnv              bool
	Config                   map[string]any // string or []string
	Env                      map[string]string
	Templates                []keyTemplate
	Services                 []keyService
	CPU, MemoryMB            int
}

type keyTemplate struct {
	Dest, Data, ChangeMode string
	Env                    bool
	Splay                  time.Duration
}

// fromAPI extracts the key fields of an api.Job (as decoded from JSON).
func fromAPI(j *api.Job) keyJob {
	k := keyJob{ID: *j.ID, Type: *j.Type, Datacenters: j.Datacenters}
	if j.Namespace != nil {
		k.Namespace = *j.Namespace
	}
	u := j.Update
	k.Update = keyUpdate{*u.MaxParallel, *u.HealthCheck, *u.MinHealthyTime, *u.HealthyDeadline, *u.ProgressDeadline, *u.AutoRevert}
	for _, g := range j.TaskGroups {
		kg := keyGroup{Name: *g.Name, Count: *g.Count, Ports: map[string]int{}}
		for _, p := range g.Networks[0].DynamicPorts {
			kg.Ports[p.Label] = p.To
		}
		r := g.RestartPolicy
		kg.Restart = keyRestart{*r.Attempts, *r.Interval, *r.Delay, *r.Mode}
		kg.Services = apiServices(g.Services)
		for _, t := range g.Tasks {
			kt := keyTask{Name: t.Name, Driver: t.Driver, KillSignal: t.KillSignal, Env: t.Env,
				Services: apiServices(t.Services), CPU: *t.Resources.CPU, MemoryMB: *t.Resources.MemoryMB, Config: map[string]any{}}
			if t.KillTimeout != nil {
				kt.KillTimeout = *t.KillTimeout
			}
			if t.Lifecycle != nil {
				kt.Lifecycle = fmt.Sprintf("%s sidecar=%t", t.Lifecycle.Hook, t.Lifecycle.Sidecar)
			}
			kt.IdentityEnv = t.Identity != nil && t.Identity.Env
			for key, v := range t.Config {
				kt.Config[key] = normalize(v)
			}
			for _, tm := range t.Templates {
				kt.Templates = append(kt.Templates, keyTemplate{*tm.DestPath, *tm.EmbeddedTmpl, *tm.ChangeMode, *tm.Envvars, *tm.Splay})
			}
			kg.Tasks = append(kg.Tasks, kt)
		}
		k.Groups = append(k.Groups, kg)
	}
	return k
}

// normalize turns decoded JSON config values ([]any of strings) into
// []string so both sides compare alike.
func normalize(v any) any {
	if l, ok := v.([]any); ok {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	return v
}

func apiServices(ss []*api.Service) []keyService {
	var out []keyService
	for _, s := range ss {
		ks := keyService{Name: s.Name, Provider: s.Provider, Port: s.PortLabel, Tags: s.Tags}
		for _, c := range s.Checks {
			ks.Checks = append(ks.Checks, keyCheck{c.Name, c.Type, c.PortLabel, c.Path, c.Interval, c.Timeout, c.OnUpdate})
		}
		out = append(out, ks)
	}
	return out
}

// fromHCL extracts the same fields from a parsed HCL jobspec; a missing or
// mistyped field is an error naming it.
func fromHCL(root *hclBlock) (k keyJob, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hcl: %v", r)
		}
	}()
	job := need(root.one("job"), "job block")
	k.ID = job.Labels[0]
	k.Namespace, _ = job.Attrs["namespace"].(string)
	k.Type = str(job, "type")
	k.Datacenters = strs(job, "datacenters")
	u := need(job.one("update"), "update block")
	k.Update = keyUpdate{num(u, "max_parallel"), str(u, "health_check"), dur(u, "min_healthy_time"),
		dur(u, "healthy_deadline"), dur(u, "progress_deadline"), boolean(u, "auto_revert")}
	for _, g := range job.all("group") {
		kg := keyGroup{Name: g.Labels[0], Count: num(g, "count"), Ports: map[string]int{}}
		for _, p := range need(g.one("network"), "network block").all("port") {
			to, _ := p.Attrs["to"].(int)
			kg.Ports[p.Labels[0]] = to
		}
		r := need(g.one("restart"), "restart block")
		kg.Restart = keyRestart{num(r, "attempts"), dur(r, "interval"), dur(r, "delay"), str(r, "mode")}
		kg.Services = hclServices(g.all("service"))
		for _, t := range g.all("task") {
			kt := keyTask{Name: t.Labels[0], Driver: str(t, "driver"), Services: hclServices(t.all("service")), Config: map[string]any{}}
			kt.KillSignal, _ = t.Attrs["kill_signal"].(string)
			if _, ok := t.Attrs["kill_timeout"]; ok {
				kt.KillTimeout = dur(t, "kill_timeout")
			}
			if l := t.one("lifecycle"); l != nil {
				kt.Lifecycle = fmt.Sprintf("%s sidecar=%t", str(l, "hook"), boolean(l, "sidecar"))
			}
			if id := t.one("identity"); id != nil {
				kt.IdentityEnv = boolean(id, "env")
			}
			for key, v := range need(t.one("config"), "config block").Attrs {
				kt.Config[key] = hclNormalize(v)
			}
			if e := t.one("env"); e != nil {
				kt.Env = map[string]string{}
				for key := range e.Attrs {
					kt.Env[key] = str(e, key)
				}
			}
			for _, tm := range t.all("template") {
				kt.Templates = append(kt.Templates, keyTemplate{str(tm, "destination"), str(tm, "data"),
					str(tm, "change_mode"), boolean(tm, "env"), dur(tm, "splay")})
			}
			res := need(t.one("resources"), "resources block")
			kt.CPU, kt.MemoryMB = num(res, "cpu"), num(res, "memory")
			kg.Tasks = append(kg.Tasks, kt)
		}
		k.Groups = append(k.Groups, kg)
	}
	return k, nil
}

func hclServices(bs []*hclBlock) []keyService {
	var out []keyService
	for _, s := range bs {
		ks := keyService{Name: str(s, "name"), Provider: str(s, "provider"), Port: str(s, "port")}
		if _, ok := s.Attrs["tags"]; ok {
			ks.Tags = strs(s, "tags")
		}
		for _, c := range s.all("check") {
			ks.Checks = append(ks.Checks, keyCheck{str(c, "name"), str(c, "type"), str(c, "port"), str(c, "path"),
				dur(c, "interval"), dur(c, "timeout"), str(c, "on_update")})
		}
		out = append(out, ks)
	}
	return out
}

func hclNormalize(v any) any {
	if l, ok := v.([]any); ok {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = x.(string)
		}
		return out
	}
	return v
}

func need(b *hclBlock, what string) *hclBlock {
	if b == nil {
		panic("missing or repeated " + what)
	}
	return b
}

func attr[T any](b *hclBlock, name string) T {
	v, ok := b.Attrs[name].(T)
	if !ok {
		panic(fmt.Sprintf("%s (line %d): attribute %s is %T, want %T", b.Type, b.Line, name, b.Attrs[name], v))
	}
	return v
}

func str(b *hclBlock, name string) string    { return attr[string](b, name) }
func num(b *hclBlock, name string) int       { return attr[int](b, name) }
func boolean(b *hclBlock, name string) bool  { return attr[bool](b, name) }
func strs(b *hclBlock, name string) []string { return hclNormalize(attr[[]any](b, name)).([]string) }
func dur(b *hclBlock, name string) time.Duration {
	d, err := time.ParseDuration(str(b, name))
	if err != nil {
		panic(fmt.Sprintf("%s: %s: %v", b.Type, name, err))
	}
	return d
}
