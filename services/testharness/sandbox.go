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
// instance as a label (so the test finds and removes exactly its own; ""
// keeps the stack's name, which Close removes), the warm pool has poolSize
// containers (0: none) of the default image.
func SandboxdEnv(instance, image string, poolSize int) map[string]string {
	env := map[string]string{
		"MOLTBOT_SANDBOX_IMAGE":     image,
		"MOLTBOT_SANDBOX_POOL_SIZE": fmt.Sprint(poolSize),
	}
	// An empty instance would label nothing, and Close (which removes by
	// the stack's name) would leave the containers behind.
	if instance != "" {
		env["MOLTBOT_SANDBOX_INSTANCE"] = instance
	}
	return env
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
// instance (they are sandboxd's, so closing the stack leaves them), then
// their workspace volumes with the same label.
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
	f := client.Filters{}.Add("label", LabelSandboxInstance+"="+instance)
	vl, err := s.docker.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list sandbox volumes: %w", err)
	}
	for _, v := range vl.Items {
		if _, err := s.docker.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("remove sandbox volume %s: %w", v.Name, err)
		}
	}
	return nil
}
