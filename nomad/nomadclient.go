package nomad

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// ClientConfigFromEnv builds a nomad/api client configuration from the task
// environment, reading only through getenv (api.DefaultConfig reads the
// process environment behind our back, which tests can't control).
//
// Address: NOMAD_UNIX_ADDR (the Task API socket, named by Nomad 1.10.3+ for
// a task with `identity { env = true }`; it always requires a token and
// never TLS) wins over NOMAD_ADDR. With neither set, a task holding a
// workload token (NOMAD_TOKEN) and a NOMAD_SECRETS_DIR gets
// unix://$NOMAD_SECRETS_DIR/api.sock: Nomad 1.5.0+ creates the Task API
// socket there for every task but names it nowhere before 1.10.3, and
// without it the default below is a port tasks can't reach. Otherwise
// http://127.0.0.1:4646. Token: NOMAD_TOKEN (the workload identity). NOMAD_NAMESPACE and NOMAD_REGION
// scope requests; NOMAD_CACERT, NOMAD_CAPATH, NOMAD_CLIENT_CERT,
// NOMAD_CLIENT_KEY, NOMAD_TLS_SERVER_NAME and NOMAD_SKIP_VERIFY configure
// TLS for an https NOMAD_ADDR (an unparsable NOMAD_SKIP_VERIFY is an error,
// not "verify").
func ClientConfigFromEnv(getenv func(string) string) (*api.Config, error) {
	cfg := &api.Config{
		Address:   "http://127.0.0.1:4646",
		Region:    getenv("NOMAD_REGION"),
		Namespace: getenv("NOMAD_NAMESPACE"),
		SecretID:  getenv("NOMAD_TOKEN"),
		TLSConfig: &api.TLSConfig{
			CACert:        getenv("NOMAD_CACERT"),
			CAPath:        getenv("NOMAD_CAPATH"),
			ClientCert:    getenv("NOMAD_CLIENT_CERT"),
			ClientKey:     getenv("NOMAD_CLIENT_KEY"),
			TLSServerName: getenv("NOMAD_TLS_SERVER_NAME"),
		},
	}
	var errs []error
	switch unix, addr := getenv("NOMAD_UNIX_ADDR"), getenv("NOMAD_ADDR"); {
	case unix != "":
		// Nomad sets it as "unix:///…/secrets/api.sock"; accept a bare
		// path too.
		if !strings.HasPrefix(unix, "unix://") {
			unix = "unix://" + unix
		}
		cfg.Address = unix
	case addr != "":
		cfg.Address = addr
	case cfg.SecretID != "" && getenv("NOMAD_SECRETS_DIR") != "":
		cfg.Address = "unix://" + filepath.Join(getenv("NOMAD_SECRETS_DIR"), TaskAPISocket)
	}
	if v := getenv("NOMAD_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("NOMAD_SKIP_VERIFY=%q is not a boolean", v))
		}
		cfg.TLSConfig.Insecure = b
	}
	if (cfg.TLSConfig.ClientCert == "") != (cfg.TLSConfig.ClientKey == "") {
		errs = append(errs, errors.New("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nomad: client environment: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// TaskAPISocket is the file name of the Task API socket in a task's
// secrets directory (Nomad's client/allocrunner/taskrunner/api_hook.go,
// since 1.5.0).
const TaskAPISocket = "api.sock"

// NewClientFromEnv is ClientConfigFromEnv followed by api.NewClient. A unix
// socket address must name an existing socket: Nomad only logs a warning
// when it can't create the Task API socket (a path too long, for one) and
// starts the task anyway, so a missing one is reported here, at start,
// rather than as a dial error on every publish.
func NewClientFromEnv(getenv func(string) string) (*api.Client, error) {
	cfg, err := ClientConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if err := checkSocket(cfg.Address, getenv("NOMAD_UNIX_ADDR") != ""); err != nil {
		return nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("nomad: client for %s: %w", cfg.Address, err)
	}
	return c, nil
}

// checkSocket reports a unix:// address whose socket is missing, saying
// where the path came from and what each Nomad version provides.
func checkSocket(addr string, named bool) error {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok {
		return nil
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Type() == fs.ModeSocket {
		return nil
	}
	what := "no such file"
	switch {
	case err == nil:
		what = "not a socket"
	case !errors.Is(err, fs.ErrNotExist):
		what = err.Error()
	}
	if named {
		return fmt.Errorf("nomad: Task API socket %s from NOMAD_UNIX_ADDR: %s; "+
			"the Nomad client could not create it (its log says \"error creating task api socket\"); "+
			"set NOMAD_ADDR to the agent's HTTP address instead", path, what)
	}
	return fmt.Errorf("nomad: Task API socket %s (NOMAD_SECRETS_DIR/%s, used because NOMAD_TOKEN is set and neither "+
		"NOMAD_UNIX_ADDR nor NOMAD_ADDR is): %s; Nomad creates it for every task since 1.5.0 and names it in "+
		"NOMAD_UNIX_ADDR since 1.10.3; on an older Nomad, or when the client could not create it (its log says "+
		"\"error creating task api socket\"), set NOMAD_ADDR to the agent's HTTP address", path, TaskAPISocket, what)
}
