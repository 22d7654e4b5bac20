package nomad

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/integration/consultest"
)

// instance is one leaderd as the Consul tags publisher sees it: its own
// health endpoint and a running publisher.
type instance struct {
	id     string
	health *httptest.Server
	pub    *ConsulTagsPublisher
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startInstance(t *testing.T, client *consulhttp.Client, service, id string, port int) *instance {
	t.Helper()
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/health" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(health.Close)
	pub, err := NewConsulTagsPublisher(ConsulTagsConfig{
		Agent: client, Service: service, Address: "127.0.0.1", Port: port, Tags: []string{"test"},
		Identity:      Identity{ID: id, InNomad: true, AllocID: id, JobID: "web", Group: "web"},
		HealthURL:     health.URL + "/v1/health",
		CheckInterval: time.Second, CheckTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{id: id, health: health, pub: pub, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- pub.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

func (in *instance) stop(t *testing.T) {
	in.once.Do(func() {
		in.cancel()
		if err := <-in.done; err != nil {
			t.Errorf("%s: Run = %v", in.id, err)
		}
	})
}

type catalogEntry struct {
	ServiceID   string
	ServiceTags []string
	ServiceMeta map[string]string
}

// watch runs blocking GETs on a Consul endpoint (raw net/http, as a user's
// tooling would) until cond holds for the decoded body, or fails after 30s.
func watch[T any](t *testing.T, agent *consultest.Agent, path string, cond func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var index string
	for {
		u := agent.URL() + path
		if index != "" {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			u += sep + "index=" + url.QueryEscape(index) + "&wait=5s"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		var v T
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: decode: %v", path, err)
		}
		if cond(v) {
			return v
		}
		index = resp.Header.Get("X-Consul-Index")
	}
}

func ids(entries []catalogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.ServiceID)
	}
	slices.Sort(out)
	return out
}

func TestConsulTagsAgainstConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	client, err := consulhttp.NewClient(consulhttp.Config{Address: agent.Addr})
	if err != nil {
		t.Fatal(err)
	}
	const service = "leaderd-tags-test"
	a := startInstance(t, client, service, "alloc-a", 9001)
	b := startInstance(t, client, service, "alloc-b", 9002)
	idA, idB := service+"-alloc-a", service+"-alloc-b"

	leaderIs := func(want string) func([]catalogEntry) bool {
		return func(es []catalogEntry) bool { return cmp.Equal(ids(es), []string{want}) }
	}
	byTag := "/v1/catalog/service/" + service + "?tag="

	// Term 1: a leads.
	a.pub.Publish(Status{Role: RoleLeader, ID: "alloc-a", Token: 10, LeaderID: "alloc-a"})
	b.pub.Publish(Status{Role: RoleFollower, ID: "alloc-b", Token: 10, LeaderID: "alloc-a"})
	got := watch(t, agent, byTag+TagLeader, leaderIs(idA))
	if tok := got[0].ServiceMeta[MetaToken]; tok != "10" {
		t.Errorf("leader Meta[%s] = %q, want 10", MetaToken, tok)
	}
	watch(t, agent, byTag+TagFollower, leaderIs(idB))

	// Handover: the old leader steps down first, then b is elected.
	a.pub.Publish(Status{Role: RoleCandidate, ID: "alloc-a"})
	b.pub.Publish(Status{Role: RoleLeader, ID: "alloc-b", Token: 12, LeaderID: "alloc-b"})
	got = watch(t, agent, byTag+TagLeader, leaderIs(idB))
	if diff := cmp.Diff([]string{"leader", "test"}, got[0].ServiceTags); diff != "" {
		t.Errorf("leader tags (-want +got):\n%s", diff)
	}
	if tok := got[0].ServiceMeta[MetaToken]; tok != strconv.Itoa(12) {
		t.Errorf("new leader Meta[%s] = %q, want 12", MetaToken, tok)
	}
	watch(t, agent, byTag+TagFollower, leaderIs(idA))

	// Health as DNS sees it: the passing leader alone.
	type healthEntry struct{ Service struct{ ID string } }
	watch(t, agent, "/v1/health/service/"+service+"?passing=true&tag="+TagLeader, func(es []healthEntry) bool {
		return len(es) == 1 && es[0].Service.ID == idB
	})

	// leaderd b dies without deregistering: its check goes critical once
	// the health URL stops answering.
	b.health.Close()
	type check struct{ ServiceID, Status string }
	watch(t, agent, "/v1/health/checks/"+service, func(cs []check) bool {
		for _, c := range cs {
			if c.ServiceID == idB {
				return c.Status == consulhttp.StatusCritical
			}
		}
		return false
	})

	// a exits gracefully: deregistered at once.
	a.stop(t)
	watch(t, agent, "/v1/catalog/service/"+service, func(es []catalogEntry) bool {
		return cmp.Equal(ids(es), []string{idB})
	})
}
