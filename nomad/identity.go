package nomad

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Identity is who this candidate is and where it can be reached, read from a
// Nomad task's environment or, outside Nomad, from VM defaults.
type Identity struct {
	// ID is the candidate id: the allocation id inside Nomad (unique for
	// the life of the allocation, stable across task restarts), the
	// hostname outside (stable across process restarts, so a restarted
	// instance re-registers over its own Consul service instead of leaving
	// a stale one behind). Override it when running several instances on
	// one host.
	ID string
	// Address is host:port that others can reach, from the port label's
	// NOMAD_HOST_IP_/NOMAD_HOST_PORT_ (or NOMAD_ADDR_) variables. Empty
	// outside Nomad or without a port label: the caller configures it.
	Address string

	InNomad     bool
	AllocID     string // NOMAD_ALLOC_ID
	AllocName   string // NOMAD_ALLOC_NAME, e.g. "web.web[0]"
	AllocIndex  string // NOMAD_ALLOC_INDEX
	JobID       string // NOMAD_JOB_ID
	JobParentID string // NOMAD_JOB_PARENT_ID (dispatched and periodic jobs)
	JobName     string // NOMAD_JOB_NAME
	Group       string // NOMAD_GROUP_NAME
	Task        string // NOMAD_TASK_NAME
	Namespace   string // NOMAD_NAMESPACE
	Region      string // NOMAD_REGION
	Datacenter  string // NOMAD_DC
	Hostname    string // os.Hostname, inside Nomad too
}

// hostname is os.Hostname, replaced in tests.
var hostname = os.Hostname

// InNomad reports whether the process runs as a Nomad task: Nomad sets
// NOMAD_ALLOC_ID in every task's environment.
func InNomad(getenv func(string) string) bool {
	return getenv("NOMAD_ALLOC_ID") != ""
}

// IdentityFromEnv reads the candidate identity from a Nomad task environment.
// portLabel names the group network port others use to reach this instance
// (e.g. "status"); empty means "don't derive an address". Outside Nomad it
// returns the hostname as ID and an empty Address. Every problem is reported
// at once.
func IdentityFromEnv(getenv func(string) string, portLabel string) (Identity, error) {
	host, herr := hostname()
	id := Identity{Hostname: host}
	if !InNomad(getenv) {
		if herr != nil || host == "" {
			return id, fmt.Errorf("nomad: not in a Nomad task and no hostname for the candidate id (set it explicitly): %v", herr)
		}
		id.ID = host
		return id, nil
	}
	id.InNomad = true
	id.AllocID = getenv("NOMAD_ALLOC_ID")
	id.ID = id.AllocID
	id.AllocName = getenv("NOMAD_ALLOC_NAME")
	id.AllocIndex = getenv("NOMAD_ALLOC_INDEX")
	id.JobID = getenv("NOMAD_JOB_ID")
	id.JobParentID = getenv("NOMAD_JOB_PARENT_ID")
	id.JobName = getenv("NOMAD_JOB_NAME")
	id.Group = getenv("NOMAD_GROUP_NAME")
	id.Task = getenv("NOMAD_TASK_NAME")
	id.Namespace = getenv("NOMAD_NAMESPACE")
	id.Region = getenv("NOMAD_REGION")
	id.Datacenter = getenv("NOMAD_DC")

	var errs []error
	if id.JobID == "" {
		errs = append(errs, errors.New("NOMAD_JOB_ID is empty"))
	}
	if id.Group == "" {
		errs = append(errs, errors.New("NOMAD_GROUP_NAME is empty"))
	}
	if portLabel != "" {
		addr, err := addressFromEnv(getenv, portLabel)
		if err != nil {
			errs = append(errs, err)
		}
		id.Address = addr
	}
	if len(errs) > 0 {
		return id, fmt.Errorf("nomad: task environment (NOMAD_ALLOC_ID=%s): %w", id.AllocID, errors.Join(errs...))
	}
	return id, nil
}

// addressFromEnv finds host:port for a port label. The host side wins
// (NOMAD_HOST_IP_/NOMAD_HOST_PORT_): in bridge networking NOMAD_ADDR_ is the
// address inside the allocation's namespace, which other nodes can't reach.
func addressFromEnv(getenv func(string) string, label string) (string, error) {
	l := EnvLabel(label)
	if ip, port := getenv("NOMAD_HOST_IP_"+l), getenv("NOMAD_HOST_PORT_"+l); ip != "" && port != "" {
		return net.JoinHostPort(ip, port), nil
	}
	if a := getenv("NOMAD_ADDR_" + l); a != "" {
		return a, nil
	}
	if ip, port := getenv("NOMAD_IP_"+l), getenv("NOMAD_PORT_"+l); ip != "" && port != "" {
		return net.JoinHostPort(ip, port), nil
	}
	return "", fmt.Errorf("port label %q: none of NOMAD_HOST_IP_%s+NOMAD_HOST_PORT_%s, NOMAD_ADDR_%s is set; does the group's network block declare port %q?",
		label, l, l, l, label)
}

// EnvLabel turns a port label into the form Nomad uses in environment
// variable names: every character other than a letter, a digit, '_' or '.'
// becomes '_' (Nomad's helper.CleanEnvVar, applied to whole variable names;
// the label never starts the name, so leading digits stay).
func EnvLabel(label string) string {
	b := []byte(label)
	for i, c := range b {
		switch {
		case c == '_', c == '.',
			c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// VariableJob is the job id used in Nomad Variable paths: the parent's for
// dispatched and periodic children, whose own ids contain a "/" and which
// Nomad's implicit workload policy maps to the parent job's variables.
func (id Identity) VariableJob() string {
	if id.JobParentID != "" {
		return id.JobParentID
	}
	return id.JobID
}

// VariablePath is where the leader record lives: nomad/jobs/<job>/<group>,
// readable by every task of the group through Nomad's implicit workload
// policy. Empty outside Nomad.
func (id Identity) VariablePath() string {
	if !id.InNomad {
		return ""
	}
	return "nomad/jobs/" + id.VariableJob() + "/" + id.Group
}

// DefaultServiceName is the service name leaderd uses when none is
// configured: "<job>-<group>" inside Nomad, or just "<job>" when the group is
// named like the job (the common `job "web" { group "web" {…} }`), lowercased
// with anything outside [a-z0-9-] turned into '-' so it is a valid DNS label
// for <name>.service.consul. Empty outside Nomad: a VM must configure one.
func (id Identity) DefaultServiceName() string {
	if !id.InNomad {
		return ""
	}
	name := id.VariableJob()
	if id.Group != "" && id.Group != name {
		name += "-" + id.Group
	}
	return dnsLabel(name)
}

func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}
