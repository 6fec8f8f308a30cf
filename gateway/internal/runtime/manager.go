package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/config"
)

// Manager owns the current Runtime and replaces it on reload.
type Manager struct {
	deps Deps
	cur  atomic.Pointer[Runtime]

	mu      sync.Mutex     // one Apply at a time
	stopped sync.WaitGroup // old runtimes still finishing their messages
}

// NewManager builds and starts the first runtime from c.
func NewManager(ctx context.Context, d Deps, c *config.Config, secret SecretFunc) (*Manager, error) {
	m := &Manager{deps: d}
	r, err := m.provision(ctx, c, secret, true)
	if err != nil {
		return nil, err
	}
	m.cur.Store(r)
	return m, nil
}

// Current is the runtime serving now: the local channel's Send and the
// pairing notices go to it.
func (m *Manager) Current() *Runtime { return m.cur.Load() }

// SandboxPolicy is the current runtime's sandbox policy (agent.PolicySource).
func (m *Manager) SandboxPolicy() (*sandboxv1.Policy, error) { return m.Current().SandboxPolicy() }

// ProvisionError is a reload whose new runtime could not be built or
// started; the old runtime keeps serving.
type ProvisionError struct{ Err error }

func (e *ProvisionError) Error() string {
	return "the new runtime was not started, the running one keeps serving: " + e.Err.Error()
}
func (e *ProvisionError) Unwrap() error { return e.Err }

// Apply builds and starts the runtime of c, swaps it in and stops the old
// one, returning what changed per area. On a *ProvisionError nothing of
// the new runtime keeps running and the old one is untouched. Messages in
// flight finish on the old runtime (in the background).
func (m *Manager) Apply(ctx context.Context, c *config.Config, secret SecretFunc) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := m.provision(ctx, c, secret, false)
	if err != nil {
		return nil, &ProvisionError{Err: err}
	}
	old := m.cur.Swap(next)
	if old != nil {
		// Replies kept for the local channel (an approval notice) move on.
		next.local.Adopt(old.local)
		old.stopReceiving()
		m.stopped.Add(1)
		go func() { defer m.stopped.Done(); old.Stop() }()
	}
	return next.Changes(old), nil
}

func (m *Manager) provision(ctx context.Context, c *config.Config, secret SecretFunc, lenient bool) (*Runtime, error) {
	if secret == nil {
		return nil, errors.New("runtime: a SecretFunc is required")
	}
	r, err := Build(ctx, m.deps, c, secret)
	if err != nil {
		return nil, err
	}
	// At start-up a bad sandbox section only refuses commands (the CLI
	// stays reachable to fix it); a reload refuses it outright.
	if r.sandboxErr != nil && !lenient {
		return nil, r.sandboxErr
	}
	if err := r.Start(ctx, m.deps.ProbeTimeout, lenient, m.deps.Logger); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// Close stops the current runtime and waits for the old ones, at most d.
func (m *Manager) Close(d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		if r := m.cur.Load(); r != nil {
			r.Stop()
		}
		m.stopped.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("runtime: messages still in flight after %s", d)
	}
}

// DefaultCloseWait bounds how long shutdown waits for messages in flight.
const DefaultCloseWait = 30 * time.Second

// RestartCommand is how an operator restarts the gateway process.
const RestartCommand = "`docker compose restart gateway` (outside compose: restart the gateway process; a new state dir: `make down && make up`)"

// RestartOnly names the changed settings that a reload cannot apply: the
// listen address belongs to the process, not to a runtime.
func RestartOnly(old, next config.View) []string {
	if old.Gateway.Bind == next.Gateway.Bind && old.Gateway.Port == next.Gateway.Port {
		return nil
	}
	return []string{"gateway.bind/gateway.port changed: the listen address applies only after a restart: " + RestartCommand}
}
