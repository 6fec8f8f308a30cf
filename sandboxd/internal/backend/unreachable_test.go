package backend

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// No engine at DOCKER_HOST: calls fail as unavailable, naming the fix.
func TestDockerUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	d, err := NewDocker(DockerConfig{})
	require.NoError(t, err)
	defer d.Close()
	_, err = d.Ping(context.Background())
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.Contains(t, err.Error(), "start the Docker engine")
	_, err = d.Create(context.Background(), profileSpecs()["hardened"])
	require.ErrorIs(t, err, errs.ErrUnavailable)
}
