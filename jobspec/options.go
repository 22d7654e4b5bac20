// Package jobspec renders Nomad job specifications that run leaderd as a
// task group: in HCL for people to read and edit (Render), and in the JSON
// form `nomad job run -json` and Terraform's nomad_job (json = true) accept,
// built from github.com/hashicorp/nomad/api types (RenderJSON). Both come
// from one api.Job, so they describe the same job.
//
// Three layouts (Mode):
//
//   - wrap: leaderd runs the app as its child (`leaderd run -- app …`); the
//     app runs on the leader only and is stopped before leadership ends.
//   - sidecar: the app always runs; leaderd beside it (a prestart sidecar)
//     tells who leads through /v1/leader and the Consul tag.
//   - native: sidecar plus Nomad-native service discovery: leaderd writes
//     the leader record to the Nomad Variable nomad/jobs/<job>/<group>, and a
//     small "role" task turns it into a leader/follower tag on a
//     provider = "nomad" service. Needs RenderPolicy's ACL policy.
//
// The directory also holds copy-ready examples rendered from these
// (leader-task.nomad.hcl, sidecar.nomad.hcl, native.nomad.hcl,
// leaderd-vars.policy.hcl), a Terraform example (terraform/) and a systemd
// unit for VMs (systemd/).
package jobspec

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/leaderd/leaderd/nomad"
)

// Mode is the layout of the rendered task group.
type Mode string

const (
	ModeWrap    Mode = "wrap"
	ModeSidecar Mode = "sidecar"
	ModeNative  Mode = "native"
)

// Modes lists the valid modes, for flag help.
var Modes = []Mode{ModeWrap, ModeSidecar, ModeNative}

// Options say what job to render. Zero values take the defaults documented
// on each field; Render validates them and reports every problem at once.
type Options struct {
	// Mode is wrap (default), sidecar or native.
	Mode Mode
	// Service is the service name (required): leaderd's -service, the
	// Consul service leaderd registers with its leader/follower tag, and
	// the prefix of "<service>-leader", the Nomad-registered service whose
	// check passes on the leader only. Lowercase letters, digits and '-'
	// (a DNS label), at most 63 characters.
	Service string
	// Job and Group name the job and its task group; both default to
	// Service. Letters, digits, '-' and '_' (Nomad Variable paths allow no
	// more); in native mode nomad/jobs/<job>/<group> must also fit in
	// Nomad's 128 characters.
	Job   string
	Group string
	// Namespace is the job's Nomad namespace; empty leaves it out
	// (Nomad's "default").
	Namespace string
	// Datacenters default to ["*"] (every datacenter, Nomad 1.5+).
	Datacenters []string
	// Count is the number of candidates, default 3.
	Count int

	// Image is the app's Docker image. Set, the app runs with the docker
	// driver (in wrap mode leaderd must then be in the image at
	// LeaderdPath); empty, the app runs with the exec driver from Command.
	Image string
	// Command and Args start the app: leaderd's child in wrap mode
	// (Command required), the app task's command otherwise (required
	// without Image; with Image it overrides the image's command). Nomad
	// interpolates ${NOMAD_…} references in them at run time, e.g.
	// "--port=${NOMAD_PORT_app}".
	Command string
	Args    []string
	// AppPort is the port the app listens on inside its container
	// (docker's "to"); 0 lets the app read its dynamic port from
	// NOMAD_PORT_app.
	AppPort int

	// LeaderdPath is where the leaderd binary is on Nomad clients (exec
	// driver) or in the app's image (docker, wrap mode), default
	// /usr/local/bin/leaderd.
	LeaderdPath string
	// ConsulAddr is CONSUL_HTTP_ADDR for leaderd, default
	// "${attr.unique.network.ip-address}:8500" (the node's Consul agent).
	ConsulAddr string
	// Tags are extra Consul tags (leaderd -tags, and the leader-only
	// service's tags).
	Tags []string
	// KillTimeout is the leaderd task's kill_timeout, default 15s: Nomad
	// sends SIGTERM, leaderd stops its child (within its own -kill-timeout,
	// 2s by default), releases the lock and deregisters; only after this
	// long does Nomad send SIGKILL. Keep it well above leaderd's
	// -kill-timeout plus a Consul round trip.
	KillTimeout time.Duration
	// CPU (MHz) and MemoryMB size the app (leaderd's own task gets 50 MHz
	// and 64 MB in sidecar and native modes); defaults 200 and 256.
	CPU      int
	MemoryMB int
}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	nomadName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$`)
	plainText = regexp.MustCompile(`^[^"\\\s$%{}]+$`) // safe inside HCL quotes, no interpolation
)

// withDefaults returns a copy of o with defaults filled.
func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeWrap
	}
	if o.Job == "" {
		o.Job = o.Service
	}
	if o.Group == "" {
		o.Group = o.Service
	}
	if len(o.Datacenters) == 0 {
		o.Datacenters = []string{"*"}
	}
	if o.Count == 0 {
		o.Count = 3
	}
	if o.LeaderdPath == "" {
		o.LeaderdPath = "/usr/local/bin/leaderd"
	}
	if o.ConsulAddr == "" {
		o.ConsulAddr = "${attr.unique.network.ip-address}:8500"
	}
	if o.KillTimeout == 0 {
		o.KillTimeout = 15 * time.Second
	}
	if o.CPU == 0 {
		o.CPU = 200
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 256
	}
	o.Datacenters = slices.Clone(o.Datacenters)
	o.Args = slices.Clone(o.Args)
	o.Tags = slices.Clone(o.Tags)
	return o
}

func (o Options) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !slices.Contains(Modes, o.Mode) {
		add("mode %q: want wrap, sidecar or native", o.Mode)
	}
	if !dnsLabel.MatchString(o.Service) {
		add("service %q: want a DNS label (lowercase letters, digits, '-'; at most 63)", o.Service)
	}
	for _, f := range [][2]string{{"job", o.Job}, {"group", o.Group}} {
		if !nomadName.MatchString(f[1]) {
			add("%s %q: want letters, digits, '-' or '_'", f[0], f[1])
		}
	}
	if o.Mode == ModeNative {
		if err := nomad.ValidateVariablePath(o.VariablePath()); err != nil {
			add("native mode keeps the leader record at nomad/jobs/<job>/<group>: %v", err)
		}
	}
	if o.Namespace != "" && !nomadName.MatchString(o.Namespace) {
		add("namespace %q: want letters, digits, '-' or '_'", o.Namespace)
	}
	for _, dc := range o.Datacenters {
		if !plainText.MatchString(dc) {
			add("datacenter %q: want no quotes, spaces or $%%{}", dc)
		}
	}
	if o.Count < 1 {
		add("count %d: want at least 1", o.Count)
	}
	if o.Image != "" && !plainText.MatchString(o.Image) {
		add("image %q: want no quotes, spaces or $%%{}", o.Image)
	}
	switch {
	case o.Mode == ModeWrap && o.Command == "":
		add("command is required in wrap mode: it is leaderd's child, run on the leader only")
	case o.Image == "" && o.Command == "":
		add("image or command is required: the app runs with the docker driver from an image, else with exec from a command")
	}
	if o.AppPort < 0 || o.AppPort > 65535 {
		add("app port %d: want 0 (dynamic) to 65535", o.AppPort)
	}
	if !strings.HasPrefix(o.LeaderdPath, "/") || !plainText.MatchString(o.LeaderdPath) {
		add("leaderd path %q: want an absolute path without quotes, spaces or $%%{}", o.LeaderdPath)
	}
	for _, t := range o.Tags {
		if !plainText.MatchString(t) || strings.Contains(t, ",") || t == "leader" || t == "follower" {
			add("tag %q: want no quotes, spaces, commas or $%%{}, and not leader/follower (leaderd owns those)", t)
		}
	}
	if o.KillTimeout < 5*time.Second {
		add("kill timeout %s: want at least 5s, so leaderd can stop its child and release before SIGKILL", o.KillTimeout)
	}
	if o.CPU < 1 || o.MemoryMB < 1 {
		add("cpu %d / memory %d: want positive values", o.CPU, o.MemoryMB)
	}
	if len(errs) > 0 {
		return fmt.Errorf("jobspec: %w", errors.Join(errs...))
	}
	return nil
}
