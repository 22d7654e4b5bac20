package nomad

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
)

// fakeAgent records registrations; registerErrs are returned by the first
// calls, one each. deregister blocks until ctx ends when blockDeregister.
type fakeAgent struct {
	mu              sync.Mutex
	registered      []consulhttp.ServiceRegistration
	deregistered    []string
	registerErrs    []error
	blockDeregister bool
}

func (f *fakeAgent) RegisterService(ctx context.Context, r consulhttp.ServiceRegistration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.registerErrs) > 0 {
		err := f.registerErrs[0]
		f.registerErrs = f.registerErrs[1:]
		return err
	}
	f.registered = append(f.registered, r)
	return nil
}

func (f *fakeAgent) DeregisterService(ctx context.Context, id string) error {
	if f.blockDeregister {
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregistered = append(f.deregistered, id)
	return nil
}

func (f *fakeAgent) tags() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.registered {
		out = append(out, strings.Join(r.Tags, ","))
	}
	return out
}

func nomadIdentity() Identity {
	return Identity{ID: "alloc-1", InNomad: true, AllocID: "alloc-1", AllocIndex: "0", JobID: "web", Group: "api", Namespace: "default"}
}

func tagsConfig(agent ConsulAgent) ConsulTagsConfig {
	return ConsulTagsConfig{
		Agent: agent, Service: "web-api", Address: "10.0.0.5", Port: 8080, Tags: []string{"v2"},
		Identity: nomadIdentity(), HealthURL: "http://10.0.0.5:8080/v1/health",
	}
}

func TestConsulTagsRegistration(t *testing.T) {
	p, err := NewConsulTagsPublisher(tagsConfig(&fakeAgent{}))
	if err != nil {
		t.Fatal(err)
	}
	got := p.Registration(Status{Role: RoleLeader, ID: "alloc-1", Token: 42, LeaderID: "alloc-1", Session: "s-1"})
	want := consulhttp.ServiceRegistration{
		ID: "web-api-alloc-1", Name: "web-api", Tags: []string{"leader", "v2"}, Address: "10.0.0.5", Port: 8080,
		Meta: map[string]string{
			"leaderd_id": "alloc-1", "leaderd_role": "leader", "leaderd_token": "42", "leaderd_leader_id": "alloc-1",
			"leaderd_session": "s-1", "nomad_alloc_id": "alloc-1", "nomad_job": "web", "nomad_group": "api", "nomad_alloc_index": "0",
		},
		Checks: []consulhttp.AgentCheck{{
			CheckID: "service:web-api-alloc-1", Name: "leaderd health", HTTP: "http://10.0.0.5:8080/v1/health", Method: "GET",
			Interval: "5s", Timeout: "2s", Status: "passing", DeregisterCriticalServiceAfter: "1m0s",
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registration (-want +got):\n%s", diff)
	}
	if got := p.Registration(Status{Role: RoleCandidate}).Tags; !cmp.Equal(got, []string{"follower", "v2"}) {
		t.Errorf("candidate tags = %v, want [follower v2]", got)
	}
}

func TestConsulTagsConfigErrors(t *testing.T) {
	_, err := NewConsulTagsPublisher(ConsulTagsConfig{Tags: []string{"leader"}, CheckInterval: 100 * time.Millisecond, DeregisterCriticalAfter: time.Second})
	if err == nil {
		t.Fatal("no error for an empty config")
	}
	for _, want := range []string{
		"Agent is required", "Service is required", "ServiceID is required", "HealthURL is required",
		"CheckInterval 100ms is below", "DeregisterCriticalAfter 1s is below", `must not contain "leader"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestConsulTagsPublisherFlipsAndDeregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		agent := &fakeAgent{registerErrs: []error{errors.New("connection refused"), errors.New("connection refused")}}
		p, err := NewConsulTagsPublisher(tagsConfig(agent))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()

		synctest.Wait()
		if got := agent.tags(); len(got) != 0 {
			t.Fatalf("registered before any status: %v", got)
		}
		p.Publish(Status{Role: RoleCandidate, ID: "alloc-1"})
		synctest.Wait()
		if got := agent.tags(); len(got) != 0 {
			t.Fatalf("registered despite errors: %v", got)
		}
		time.Sleep(2 * time.Second) // two backoffs of at most 250ms and 500ms
		synctest.Wait()
		p.Publish(Status{Role: RoleFollower, ID: "alloc-1", LeaderID: "alloc-2", Token: 7})
		p.Publish(Status{Role: RoleFollower, ID: "alloc-1", LeaderID: "alloc-2", Token: 7}) // same again: no call
		synctest.Wait()
		p.Publish(Status{Role: RoleLeader, ID: "alloc-1", LeaderID: "alloc-1", Token: 9})
		synctest.Wait()
		want := []string{"follower,v2", "follower,v2", "leader,v2"}
		if diff := cmp.Diff(want, agent.tags()); diff != "" {
			t.Errorf("registrations (-want +got):\n%s", diff)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if diff := cmp.Diff([]string{"web-api-alloc-1"}, agent.deregistered); diff != "" {
			t.Errorf("deregistered (-want +got):\n%s", diff)
		}
	})
}

func TestConsulTagsCleanupIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		agent := &fakeAgent{blockDeregister: true}
		cfg := tagsConfig(agent)
		cfg.CleanupTimeout = 3 * time.Second
		p, err := NewConsulTagsPublisher(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		p.Publish(Status{Role: RoleLeader})
		synctest.Wait()
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("cleanup took %s, want exactly the 3s CleanupTimeout", took)
		}
	})
}

// A token without service:write can't be fixed by retrying: Run ends with
// Consul's message so leaderd run can exit 1 naming the permission.
func TestConsulTagsPermissionDeniedEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := &consulhttp.StatusError{Method: "PUT", Path: "/v1/agent/service/register", Code: 403,
			Body: `Permission denied: token with AccessorID 'x' lacks permission 'service:write' on "web-api"`}
		agent := &fakeAgent{registerErrs: []error{denied}}
		p, err := NewConsulTagsPublisher(tagsConfig(agent))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(t.Context()) }()
		p.Publish(Status{Role: RoleFollower, ID: "alloc-1"})
		synctest.Wait()
		select {
		case err := <-done:
			if !consulhttp.IsPermissionDenied(err) || !strings.Contains(err.Error(), "service:write") {
				t.Errorf("Run = %v, want the 403 naming service:write", err)
			}
		default:
			t.Fatal("Run still retrying a 403")
		}
	})
}
