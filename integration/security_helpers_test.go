package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// policyFile is the least-privilege Consul ACL policy that the README
// quotes; TestACLLeastPrivilege proves it.
const policyFile = "testdata/leaderd-consul-policy.hcl"

// policyRule is one rule of the policy file: "key", "session", ... and its
// HCL text.
type policyRule struct {
	kind string
	text string
}

var ruleStart = regexp.MustCompile(`^(key|key_prefix|session|session_prefix|node|node_prefix|service|service_prefix) "`)

// leastPrivilegeRules reads the policy file with its placeholders filled
// and returns its rules in order.
func leastPrivilegeRules(t *testing.T, service, node string) []policyRule {
	t.Helper()
	b, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("SERVICE", service, "NODE", node).Replace(string(b))
	var rules []policyRule
	var cur *policyRule
	for _, line := range strings.Split(text, "\n") {
		if m := ruleStart.FindStringSubmatch(line); m != nil {
			rules = append(rules, policyRule{kind: m[1]})
			cur = &rules[len(rules)-1]
		}
		if cur != nil && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			cur.text += line + "\n"
			if strings.TrimSpace(line) == "}" {
				cur = nil
			}
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", policyFile)
	}
	return rules
}

func joinRules(rules []policyRule) string {
	var b strings.Builder
	for _, r := range rules {
		b.WriteString(r.text)
	}
	return b.String()
}

// consulAPI sends one request to the agent with its management token and
// decodes a 200 answer into out (if not nil).
func consulAPI(t *testing.T, a *consultest.Agent, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Consul-Token", a.Token)
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// aclToken creates a policy with rules and a token holding only it, and
// returns the token's secret.
func aclToken(t *testing.T, a *consultest.Agent, name, rules string) string {
	t.Helper()
	var policy struct{ ID string }
	consulAPI(t, a, http.MethodPut, "/v1/acl/policy", map[string]string{"Name": name, "Rules": rules}, &policy)
	var token struct{ SecretID string }
	consulAPI(t, a, http.MethodPut, "/v1/acl/token",
		map[string]any{"Description": name, "Policies": []map[string]string{{"ID": policy.ID}}}, &token)
	if token.SecretID == "" {
		t.Fatal("no token secret")
	}
	return token.SecretID
}

// cmdline is what ps shows for pid.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}
