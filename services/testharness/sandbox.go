package testharness

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Sandbox container labels (sandboxd/internal/backend).
const (
	LabelSandbox           = "moltbot.sandbox"
	LabelSandboxInstance   = "moltbot.sandbox.instance"
	LabelSandboxSession    = "moltbot.sandbox.session"
	LabelSandboxConfigHash = "moltbot.sandbox.config-hash"
)

// SandboxdEnv is sandboxd's environment for a test: its containers carry
// instance as a label (so the test finds and removes exactly its own), the
// warm pool has poolSize containers (0: none) of the default image.
func SandboxdEnv(instance, image string, poolSize int) map[string]string {
	return map[string]string{
		"MOLTBOT_SANDBOX_INSTANCE":  instance,
		"MOLTBOT_SANDBOX_IMAGE":     image,
		"MOLTBOT_SANDBOX_POOL_SIZE": fmt.Sprint(poolSize),
	}
}

// SandboxContainer is one sandbox container as Docker reports it.
type SandboxContainer struct {
	ID     string
	State  string
	Labels map[string]string
}

// SandboxContainers lists the sandbox containers labelled with instance,
// straight from Docker (not through sandboxd).
func (s *Stack) SandboxContainers(ctx context.Context, instance string) ([]SandboxContainer, error) {
	f := client.Filters{}.Add("label", LabelSandbox+"=1", LabelSandboxInstance+"="+instance)
	lr, err := s.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list sandbox containers: %w", err)
	}
	out := make([]SandboxContainer, 0, len(lr.Items))
	for _, c := range lr.Items {
		out = append(out, SandboxContainer{ID: c.ID, State: string(c.State), Labels: c.Labels})
	}
	return out, nil
}

// RemoveSandboxContainers removes the sandbox containers labelled with
// instance (they are sandboxd's, so closing the stack leaves them).
func (s *Stack) RemoveSandboxContainers(ctx context.Context, instance string) error {
	cs, err := s.SandboxContainers(ctx, instance)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if _, err := s.docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("remove sandbox container %.12s: %w", c.ID, err)
		}
	}
	return nil
}
