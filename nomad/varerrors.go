package nomad

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/nomad/api"
)

// PolicyName is the name leaderd's docs and jobspecs give the Nomad ACL
// policy that lets a group write its leader record.
const PolicyName = "leaderd-vars"

// VariablesPolicy is the Nomad ACL policy (HCL) that grants write and read
// on one variable path in one namespace — all the Variables publisher needs.
// Reads alone are already granted by Nomad's implicit workload policy; write
// is not, hence this policy.
func VariablesPolicy(namespace, path string) string {
	if namespace == "" {
		namespace = "default"
	}
	return fmt.Sprintf(`namespace %q {
  variables {
    path %q {
      capabilities = ["write", "read"]
    }
  }
}
`, namespace, path)
}

// PolicyApplyCommand is the command that attaches VariablesPolicy (saved as
// policyFile) to every task of a job's group through workload identity.
func PolicyApplyCommand(namespace, job, group, policyFile string) string {
	if namespace == "" {
		namespace = "default"
	}
	return fmt.Sprintf("nomad acl policy apply -namespace %s -job %s -group %s %s %s",
		namespace, job, group, PolicyName, policyFile)
}

// PermissionError is a 403 from Nomad on the leader record. Its message
// says exactly which policy to apply and how. It never contains the token.
type PermissionError struct {
	Op        string // "read" or "write"
	Namespace string
	Path      string
	Job       string // empty outside Nomad (a plain ACL token then)
	Group     string
	Body      string // Nomad's answer, e.g. "Permission denied"
}

func (e *PermissionError) Error() string {
	ns := e.Namespace
	if ns == "" {
		ns = "default"
	}
	const file = PolicyName + ".policy.hcl"
	policy := fmt.Sprintf(`namespace %q { variables { path %q { capabilities = ["write", "read"] } } }`, ns, e.Path)
	if e.Job == "" {
		return fmt.Sprintf("nomad: %s of variable %q in namespace %q: %s (403); the NOMAD_TOKEN lacks access: "+
			"write %s containing `%s`, run `nomad acl policy apply %s %s` and attach policy %q to the token",
			e.Op, e.Path, ns, e.Body, file, policy, PolicyName, file, PolicyName)
	}
	return fmt.Sprintf("nomad: %s of variable %q in namespace %q: %s (403); the task's workload identity may only read it: "+
		"write %s containing `%s` and run `%s`",
		e.Op, e.Path, ns, e.Body, file, policy, PolicyApplyCommand(ns, e.Job, e.Group, file))
}

// statusCode extracts the HTTP status of a nomad/api error (0 if none).
func statusCode(err error) (int, string) {
	var ure api.UnexpectedResponseError
	if errors.As(err, &ure) && ure.HasStatusCode() {
		return ure.StatusCode(), ure.Body()
	}
	return 0, ""
}

func isCASConflict(err error) bool {
	var c api.ErrCASConflict
	return errors.As(err, &c)
}

// permissionError turns a 403 into a *PermissionError; other errors pass.
func (p *VariablesPublisher) permissionError(op string, err error) error {
	code, body := statusCode(err)
	if code != http.StatusForbidden {
		return err
	}
	id := p.cfg.Identity
	job := ""
	if id.InNomad {
		job = id.VariableJob()
	}
	return &PermissionError{Op: op, Namespace: p.cfg.Namespace, Path: p.cfg.Path, Job: job, Group: id.Group, Body: body}
}
