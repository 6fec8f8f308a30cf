//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// testImage is the busybox sandbox image (make sandbox-testimage).
const testImage = "moltbot-sandbox-test:latest"

// sandboxConfig is the gateway config of these tests: the local channel
// lets every group in and the DM sender "owner", who is the channel's owner
// (channels.local.owner: their DMs are the main session); sandbox settings
// are merged into agents.defaults.sandbox.
// Strict JSON (a JSON5 file is valid too, but keep it simple).
func sandboxConfig(t *testing.T, sandbox map[string]any) []byte {
	t.Helper()
	docker := map[string]any{"image": testImage}
	sb := map[string]any{"docker": docker}
	for k, v := range sandbox {
		if k == "docker" {
			for dk, dv := range v.(map[string]any) {
				docker[dk] = dv
			}
			continue
		}
		sb[k] = v
	}
	b, err := json.Marshal(map[string]any{
		"version": 1,
		"channels": map[string]any{"local": map[string]any{
			"dm":     map[string]any{"policy": "allowlist", "allowFrom": []string{"owner"}},
			"groups": map[string]any{"policy": "open"},
			"owner":  []string{"owner"},
		}},
		"agents": map[string]any{"defaults": map[string]any{"sandbox": sb}},
	})
	require.NoError(t, err)
	return b
}

// sandboxStack starts a stack whose sandboxd labels its containers with a
// per-test instance, and removes those containers at the end.
func sandboxStack(t *testing.T, cfg []byte, sandboxdEnv map[string]string) (*testharness.Stack, string) {
	t.Helper()
	if err := exec.Command("docker", "image", "inspect", testImage).Run(); err != nil {
		t.Fatalf("%s is missing: run `make sandbox-testimage` (%v)", testImage, err)
	}
	instance := fmt.Sprintf("it%d", time.Now().UnixNano()%1e9)
	env := testharness.SandboxdEnv(instance, testImage, 0)
	for k, v := range sandboxdEnv {
		env[k] = v
	}
	st := testharness.Start(t, testharness.Options{
		GatewayConfig: cfg,
		Service:       map[string]testharness.ServiceOptions{testharness.Sandboxd: {Env: env}},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := st.RemoveSandboxContainers(ctx, instance); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// sandboxd's workspace volumes for this instance, by label as make purge does.
		if out, err := exec.Command("docker", "volume", "ls", "-q", "--filter", "label=moltbot.sandbox.instance="+instance).Output(); err == nil {
			for _, v := range strings.Fields(string(out)) {
				_ = exec.Command("docker", "volume", "rm", "-f", v).Run()
			}
		}
	})
	return st, instance
}

// agentVolumes are the agent workspace volumes (the owner's) of a test
// sandboxd instance.
func agentVolumes(t *testing.T, instance string) []string {
	t.Helper()
	out, err := exec.Command("docker", "volume", "ls", "-q", "--filter", "label=moltbot.sandbox.instance="+instance,
		"--filter", "label=moltbot.sandbox.volume=agent-workspace").Output()
	require.NoError(t, err)
	return strings.Fields(string(out))
}

// sessionContainers are the instance's sandbox containers of one session.
func sessionContainers(t *testing.T, st *testharness.Stack, instance, session string) []testharness.SandboxContainer {
	t.Helper()
	cs, err := st.SandboxContainers(ctxFor(t, 30*time.Second), instance)
	require.NoError(t, err)
	var out []testharness.SandboxContainer
	for _, c := range cs {
		if c.Labels[testharness.LabelSandboxSession] == session {
			out = append(out, c)
		}
	}
	return out
}

func send(t *testing.T, gw gatewayv1.GatewayClient, from, group, text string) (string, *gatewayv1.SendResponse) {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	resp, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: from, GroupId: group, Text: text})
	require.NoError(t, err)
	require.Truef(t, resp.GetReachedAgent(), "message did not reach the agent: %s", resp.GetDecision())
	require.Len(t, resp.GetReplies(), 1)
	return resp.GetReplies()[0], resp
}

var sandboxIDRE = regexp.MustCompile(`sandbox ([0-9a-f]{12}), profile (main|hardened)\]`)

// TestSandboxRouting covers issue 6's whole-stack items: a group /exec runs
// in a sandbox container labelled with the session; the owner's main
// session's runs in one too, under the main profile (the gateway runs no
// command); mode off gives every session the main profile; a changed
// sandbox config recreates the container on the next message (new id, new
// hash label).
func TestSandboxRouting(t *testing.T) {
	st, instance := sandboxStack(t, sandboxConfig(t, nil), nil)
	gw := st.AdminGateway(t)
	sb := sandboxv1.NewSandboxClient(st.AdminConn(t))
	ctx := ctxFor(t, 3*time.Minute)
	const group = "g-42"
	groupKey := "agent:main:local:group:" + group

	var firstID, firstHash string
	t.Run("group exec runs in a sandbox", func(t *testing.T) {
		start := time.Now()
		reply, resp := send(t, gw, "someone", group, "/exec id -u")
		t.Logf("first group /exec (cold container) took %v", time.Since(start))
		require.Equal(t, groupKey, resp.GetSessionKey())
		require.Contains(t, reply, "\n10001\n", reply)
		m := sandboxIDRE.FindStringSubmatch(reply)
		require.NotNil(t, m, "reply names no sandbox: %q", reply)

		start = time.Now()
		reply2, _ := send(t, gw, "someone", group, "/exec id -u")
		t.Logf("second group /exec (warm container) took %v", time.Since(start))
		require.Contains(t, reply2, "sandbox "+m[1])

		cs, err := st.SandboxContainers(ctx, instance)
		require.NoError(t, err)
		require.Len(t, cs, 1)
		require.True(t, strings.HasPrefix(cs[0].ID, m[1]))
		require.Equal(t, groupKey, cs[0].Labels[testharness.LabelSandboxSession], "the container's labels show the session")
		firstID, firstHash = cs[0].ID, cs[0].Labels[testharness.LabelSandboxConfigHash]
		require.NotEmpty(t, firstHash)

		list, err := sb.List(ctx, &sandboxv1.ListRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetContainers(), 1)
		require.Equal(t, groupKey, list.GetContainers()[0].GetSessionKey())

		// Issue 17: the group's workspace is writable, the working dir,
		// and kept for the next command.
		reply, _ = send(t, gw, "someone", group, "/exec echo x > /workspace/a.txt && pwd")
		require.Contains(t, reply, "\n/workspace\n", reply)
		reply, _ = send(t, gw, "someone", group, "/exec cat a.txt")
		require.Contains(t, reply, "\nx\n", reply)
		list, err = sb.List(ctx, &sandboxv1.ListRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetWorkspaces(), 1)
		require.Equal(t, groupKey, list.GetWorkspaces()[0].GetSessionKey())
		require.True(t, list.GetWorkspaces()[0].GetMeasured())
	})

	t.Run("main session exec runs in a main-profile sandbox", func(t *testing.T) {
		reply, resp := send(t, gw, "owner", "", "/exec id -u")
		require.Equal(t, "agent:main:main", resp.GetSessionKey())
		require.Contains(t, reply, ", profile main]")
		require.Contains(t, reply, "\n10001\n", "the sandbox user, not the gateway's")
		require.Len(t, sessionContainers(t, st, instance, "agent:main:main"), 1, "the main session has its own container")
		ex, err := sb.Explain(ctx, &sandboxv1.ExplainRequest{SessionKey: "agent:main:main"})
		require.NoError(t, err)
		require.True(t, ex.GetMainSession())
		require.True(t, ex.GetSandboxed())
		require.Equal(t, sandboxv1.Profile_PROFILE_MAIN, ex.GetProfile())
	})

	t.Run("changed config recreates the container", func(t *testing.T) {
		// `gateway restart` (Reload) applies it in place: no process restart.
		require.NoError(t, st.WriteStateFile(testharness.Gateway, "moltbot.json",
			sandboxConfig(t, map[string]any{"docker": map[string]any{"pidsLimit": 64}})))
		require.True(t, reloadNow(t, gw).GetApplied())
		reply, _ := send(t, gw, "someone", group, "/exec cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
		require.Contains(t, reply, "\n64\n", reply)
		cs := sessionContainers(t, st, instance, groupKey)
		require.Len(t, cs, 1, "the old container is removed")
		require.NotEqual(t, firstID, cs[0].ID, "new container id")
		require.NotEqual(t, firstHash, cs[0].Labels[testharness.LabelSandboxConfigHash], "new hash label")
		require.Equal(t, groupKey, cs[0].Labels[testharness.LabelSandboxSession])
		reply, _ = send(t, gw, "someone", group, "/exec cat a.txt")
		require.Contains(t, reply, "\nx\n", "the workspace survives the config change: %s", reply)
	})

	t.Run("mode off gives every session the main profile", func(t *testing.T) {
		require.NoError(t, st.RemoveSandboxContainers(ctx, instance))
		require.NoError(t, st.WriteStateFile(testharness.Gateway, "moltbot.json", sandboxConfig(t, map[string]any{"mode": "off"})))
		require.True(t, reloadNow(t, gw).GetApplied())
		reply, _ := send(t, gw, "someone", "g-off", "/exec id -u; ls /workspace")
		require.Contains(t, reply, ", profile main]")
		require.Contains(t, reply, "\n10001\n")
		reply, _ = send(t, gw, "owner", "", "/exec id -u")
		require.Contains(t, reply, ", profile main]")
		g := sessionContainers(t, st, instance, "agent:main:local:group:g-off")
		require.Len(t, g, 1)
		out, err := exec.Command("docker", "inspect", "-f", "{{.HostConfig.NetworkMode}} {{json .Mounts}}", g[0].ID).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.True(t, strings.HasPrefix(string(out), "bridge "), "the main profile's network: %s", out)
		agentVols := agentVolumes(t, instance)
		require.NotEmpty(t, agentVols, "the owner's session made the agent's workspace")
		for _, v := range agentVols {
			require.NotContains(t, string(out), v, "never the owner's workspace")
		}
	})
}

// TestSandboxDockerMissing: sandboxd without a reachable Docker socket
// still serves, reports the problem (Info, the "sandbox" health service),
// and a non-main /exec is refused with the fix, never run unsandboxed.
func TestSandboxDockerMissing(t *testing.T) {
	st, _ := sandboxStack(t, sandboxConfig(t, nil), map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
	ctx := ctxFor(t, time.Minute)

	hc := healthpb.NewHealthClient(st.ServiceConn(t, testharness.Sandboxd, testharness.Gateway))
	h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "sandbox"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, h.GetStatus())
	h, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus(), "sandboxd itself stays up to report it")

	info, err := sandboxv1.NewSandboxClient(st.AdminConn(t)).Info(ctx, &sandboxv1.InfoRequest{})
	require.NoError(t, err)
	require.False(t, info.GetDockerReachable())
	require.Contains(t, info.GetDockerError(), "start the Docker engine")

	reply, _ := send(t, st.AdminGateway(t), "someone", "g-1", "/exec id -u")
	require.True(t, strings.HasPrefix(reply, "exec refused: "), reply)
	require.Contains(t, reply, "start the Docker engine", "the fix is in the message")
	require.Contains(t, reply, "never run unsandboxed")
	require.NotContains(t, reply, "10001")
	require.NotContains(t, reply, "65101")

	// The owner's main session is refused too: the gateway runs no command.
	reply, _ = send(t, st.AdminGateway(t), "owner", "", "/exec id -u")
	require.True(t, strings.HasPrefix(reply, "exec refused: "), reply)
	require.NotContains(t, reply, "65101")
}
