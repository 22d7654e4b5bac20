package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInputSecurity adds to TestBadInputBinary the bad input that is
// about reaching Consul safely: TLS and address variables, token files and
// tokens. Each must stop leaderd with exit 2 and one line on stderr that
// names the setting, before any request is sent (so nothing listens on the
// address: a request would show up as a retry log line, not an exit), and
// never repeat a token.
func TestBadInputSecurity(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret1, secret2 = "6d1f0c9e-s3cret-first-line", "second-s3cret-line"
	empty := file("empty", "")
	blank := file("blank", " \n\t\n")
	twoLines := file("two-lines", secret1+"\n"+secret2+"\n")
	notPEM := file("not.pem", "this is not a certificate")
	emptyDir := filepath.Join(dir, "no-cas")
	if err := os.Mkdir(emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	run := []string{"run", "-service", "x", "-listen", ""}

	tests := []struct {
		name string
		env  []string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"ssl verify not a boolean", []string{"CONSUL_HTTP_SSL_VERIFY=maybe"}, run,
			[]string{`leaderd run: CONSUL_HTTP_SSL_VERIFY: "maybe" is not a boolean (want true or false)`}},
		{"ssl not a boolean", []string{"CONSUL_HTTP_SSL=maybe"}, run,
			[]string{`leaderd run: CONSUL_HTTP_SSL: "maybe" is not a boolean`}},
		{"ipv6 address without brackets", []string{"CONSUL_HTTP_ADDR=::bad"}, run,
			[]string{`leaderd run: CONSUL_HTTP_ADDR: address "::bad": an IPv6 address needs brackets`}},
		{"port out of range", []string{"CONSUL_HTTP_ADDR=127.0.0.1:99999"}, run,
			[]string{`CONSUL_HTTP_ADDR: address "127.0.0.1:99999": port "99999" is not a number between 1 and 65535`}},
		{"port not a number from the flag", nil, append(run, "-http-addr", "127.0.0.1:notaport"),
			[]string{`leaderd run: consul settings: consul address "127.0.0.1:notaport": port "notaport"`}},
		{"unknown scheme", []string{"CONSUL_HTTP_ADDR=tcp://127.0.0.1:8500"}, run,
			[]string{`CONSUL_HTTP_ADDR: address "tcp://127.0.0.1:8500": unknown scheme "tcp"`}},
		{"client cert without key", []string{"CONSUL_CLIENT_CERT=" + notPEM}, run,
			[]string{"CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"}},
		{"client key without cert", []string{"CONSUL_CLIENT_KEY=" + notPEM}, run,
			[]string{"CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"}},
		{"client cert that is not PEM", []string{"CONSUL_CLIENT_CERT=" + notPEM, "CONSUL_CLIENT_KEY=" + notPEM}, run,
			[]string{`client certificate "` + notPEM + `"`, "(CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY)", "PEM"}},
		{"client key missing", nil, append(run, "-client-cert", notPEM, "-client-key", missing),
			[]string{`with key "` + missing + `"`, "no such file or directory"}},
		{"CA file missing", []string{"CONSUL_CACERT=" + missing}, run,
			[]string{"CA file (CONSUL_CACERT): open " + missing + ": no such file or directory"}},
		{"CA file not PEM", nil, append(run, "-ca-file", notPEM),
			[]string{`CA file "` + notPEM + `"`, "no PEM certificate in it"}},
		{"CA path without certificates", []string{"CONSUL_CAPATH=" + emptyDir}, run,
			[]string{`CA path "` + emptyDir + `" (CONSUL_CAPATH): no certificate files in it`}},
		{"TLS server name with two ports", []string{"CONSUL_TLS_SERVER_NAME=a:b:c"}, run,
			[]string{`TLS server name "a:b:c" (CONSUL_TLS_SERVER_NAME)`}},
		// Tests run as root, who can read any file: a directory stands in
		// for an unreadable token file.
		{"token file is a directory", []string{"CONSUL_HTTP_TOKEN_FILE=" + dir}, run,
			[]string{"token file (CONSUL_HTTP_TOKEN_FILE): read " + dir + ": is a directory"}},
		{"token file is a directory, from the flag", nil, append(run, "-token-file", dir),
			[]string{"read " + dir + ": is a directory"}},
		{"empty token file", []string{"CONSUL_HTTP_TOKEN_FILE=" + empty}, run,
			[]string{`token file "` + empty + `" (CONSUL_HTTP_TOKEN_FILE) is empty`}},
		{"blank token file, from the flag", nil, append(run, "-token-file", blank),
			[]string{`token file "` + blank + `"`, "is empty"}},
		{"token file of two lines", []string{"CONSUL_HTTP_TOKEN_FILE=" + twoLines}, run,
			[]string{"consul settings: ACL token contains a line break"}},
		{"token with a line break", []string{"CONSUL_HTTP_TOKEN=" + secret1 + "\n" + secret2}, run,
			[]string{"consul settings: ACL token contains a line break"}},
		{"bool twin not a boolean", []string{"LEADERD_RESTART=maybe"}, run,
			[]string{`invalid value "maybe" for LEADERD_RESTART`}},
		{"duration twin not a duration", []string{"LEADERD_KILL_TIMEOUT=forever"}, run,
			[]string{`invalid value "forever" for LEADERD_KILL_TIMEOUT: time: invalid duration "forever"`}},
		{"leader: ssl verify not a boolean", []string{"CONSUL_HTTP_SSL_VERIFY=maybe"}, []string{"leader", "-service", "x"},
			[]string{`leaderd leader: CONSUL_HTTP_SSL_VERIFY: "maybe" is not a boolean`}},
		{"leader: token with a line break", []string{"CONSUL_HTTP_TOKEN=" + secret1 + "\r" + secret2}, []string{"leader", "-service", "x"},
			[]string{"leaderd leader: consul settings: ACL token contains a line break"}},
		{"every consul variable problem on one line", []string{"CONSUL_HTTP_ADDR=::bad", "CONSUL_HTTP_SSL=x", "CONSUL_CLIENT_KEY=/k.pem"}, run,
			[]string{"CONSUL_HTTP_ADDR: ", `; CONSUL_HTTP_SSL: "x" is not a boolean`, "; CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing listens on the default address in the test's
			// environment: if leaderd went on to talk to Consul it would
			// retry there and runOnce would time out instead.
			code, stdout, stderr := runOnce(t, 10*time.Second, tc.env, tc.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("stderr has %d lines, want 1:\n%s", len(lines), stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("stderr %q lacks %q", lines[0], w)
				}
			}
			for _, s := range []string{secret1, secret2} {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("output repeats a token: %q", stdout+stderr)
				}
			}
		})
	}
}
