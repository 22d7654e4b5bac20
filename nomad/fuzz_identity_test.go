package nomad

import (
	"net"
	"strings"
	"testing"
)

// FuzzIdentityFromEnv feeds the Nomad task environment reader any values.
// It must never panic. Inside Nomad the candidate id is the allocation id;
// the error, when there is one, names the variables that are missing; the
// default service name is a DNS label (what <name>.service.consul needs);
// the Variables path is the job's and group's; the address, when derived
// from the host side, is that host and port. Seeds are in
// testdata/fuzz/FuzzIdentityFromEnv/; explore with
// go test -run '^$' -fuzz FuzzIdentityFromEnv -fuzztime 20s ./nomad
func FuzzIdentityFromEnv(f *testing.F) {
	f.Fuzz(func(t *testing.T, allocID, jobID, parentID, group, label, hostIP, hostPort, addr string) {
		l := EnvLabel(label)
		if len(l) != len(label) || strings.ContainsFunc(l, func(r rune) bool {
			return !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			t.Fatalf("EnvLabel(%q) = %q: not the same length in [A-Za-z0-9_.]", label, l)
		}
		env := map[string]string{
			"NOMAD_ALLOC_ID": allocID, "NOMAD_JOB_ID": jobID, "NOMAD_JOB_PARENT_ID": parentID, "NOMAD_GROUP_NAME": group,
			"NOMAD_HOST_IP_" + l: hostIP, "NOMAD_HOST_PORT_" + l: hostPort, "NOMAD_ADDR_" + l: addr,
		}
		id, err := IdentityFromEnv(func(k string) string { return env[k] }, label)
		if allocID == "" {
			if id.InNomad || id.VariablePath() != "" || id.DefaultServiceName() != "" {
				t.Errorf("outside Nomad: %+v, path %q, service %q", id, id.VariablePath(), id.DefaultServiceName())
			}
			if err == nil && id.ID != id.Hostname {
				t.Errorf("outside Nomad the id is %q, want the hostname %q", id.ID, id.Hostname)
			}
			return
		}
		if !id.InNomad || id.ID != allocID || id.AllocID != allocID {
			t.Errorf("in Nomad: id %q alloc %q, want %q", id.ID, id.AllocID, allocID)
		}
		noAddr := label != "" && (hostIP == "" || hostPort == "") && addr == ""
		wantErr := jobID == "" || group == "" || noAddr
		if (err != nil) != wantErr {
			t.Fatalf("job %q group %q label %q host %q:%q addr %q: error %v, want error %v", jobID, group, label, hostIP, hostPort, addr, err, wantErr)
		}
		if err != nil {
			msg := err.Error()
			for name, missing := range map[string]bool{"NOMAD_JOB_ID": jobID == "", "NOMAD_GROUP_NAME": group == "", "NOMAD_HOST_PORT_" + l: noAddr} {
				if missing && !strings.Contains(msg, name) {
					t.Errorf("error %q does not name %s", msg, name)
				}
			}
			return
		}
		// Nomad's host IPs are IPs and its ports numbers; anything else is
		// taken as given (a malformed address, not an error).
		if label != "" && net.ParseIP(hostIP) != nil && hostPort != "" && strings.Trim(hostPort, "0123456789") == "" {
			h, p, serr := net.SplitHostPort(id.Address)
			if serr != nil || h != hostIP || p != hostPort {
				t.Errorf("address %q from host %q port %q (%v)", id.Address, hostIP, hostPort, serr)
			}
		}
		if name := id.DefaultServiceName(); strings.Trim(name, "-") != name || strings.ContainsFunc(name, func(r rune) bool {
			return !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			t.Errorf("service name %q is not a DNS label", name)
		}
		job := jobID
		if parentID != "" {
			job = parentID
		}
		if got, want := id.VariablePath(), "nomad/jobs/"+job+"/"+group; got != want {
			t.Errorf("variable path %q, want %q", got, want)
		}
	})
}
