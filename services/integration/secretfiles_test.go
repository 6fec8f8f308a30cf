//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// keyCheckingModel is a minimal chat-completions endpoint that answers only
// to "Bearer <key>" and records every Authorization header it saw.
func keyCheckingModel(t *testing.T, key string) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "bad key", "type": "invalid_request_error"}})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-fake",
			"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": "key accepted"}, "finish_reason": "stop"}},
		})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestSecretFileReference: the owner puts a file through the gateway into
// secretsd's secret-files dir, a provider apiKey refers to it as
// ${file:NAME}, and the model is called with exactly that key. A reference
// outside the roots, and a root overlapping a state dir, are refused by
// SetConfig; a client-role caller cannot write files.
func TestSecretFileReference(t *testing.T) {
	files := filepath.Join(t.TempDir(), "secret-files")
	require.NoError(t, os.Mkdir(files, 0o750))
	const key = "sk-from-secret-file-0123456789abcdef"
	model, seen := keyCheckingModel(t, key)
	cfg, err := json.Marshal(map[string]any{
		"version":  1,
		"channels": map[string]any{"local": map[string]any{"dm": map[string]any{"policy": "allowlist", "allowFrom": []string{"owner"}}}},
		"agents":   map[string]any{"defaults": map[string]any{"backend": "openai"}},
		"models":   map[string]any{"providers": map[string]any{"openai": map[string]any{"baseUrl": model.URL + "/v1", "model": "gpt-fake"}}},
		"secrets":  map[string]any{"fileRoots": []string{files}},
	})
	require.NoError(t, err)
	ls := testharness.StartLocal(t, testharness.LocalOptions{
		Services:      []string{testharness.Secretsd, testharness.Gateway},
		Env:           map[string]map[string]string{testharness.Secretsd: {"MOLTBOT_SECRET_FILES_DIR": files}},
		GatewayConfig: cfg,
	})
	gw := ls.AdminGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	put, err := gw.PutSecretFile(ctx, &gatewayv1.PutSecretFileRequest{Name: "openai.key", Content: []byte(key + "\n")})
	require.NoError(t, err)
	require.Equal(t, "${file:openai.key}", put.GetFile().GetReference())
	st, err := os.Stat(filepath.Join(files, "openai.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	list, err := gw.ListSecretFiles(ctx, &gatewayv1.ListSecretFilesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetFiles(), 1)
	require.NotContains(t, list.String(), key, "names and sizes, never contents")

	_, err = gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "models.providers.openai.apiKey", Value: "${file:openai.key}", ValueIsString: true})
	require.NoError(t, err)
	raw, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	require.Contains(t, string(raw), "${file:openai.key}", "stays a reference")
	require.NotContains(t, string(raw), key)
	rl, err := gw.Reload(ctx, &gatewayv1.ReloadRequest{})
	require.NoError(t, err)
	require.True(t, rl.GetApplied(), "%v", rl.GetProblems())

	r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "owner", Text: "hello"})
	require.NoError(t, err)
	require.Contains(t, strings.Join(r.GetReplies(), "\n"), "key accepted")
	require.Contains(t, seen(), "Bearer "+key, "the model got the file's content as the key")

	before, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	refused := []struct {
		name, path, value, want string
	}{
		{"a reference to the PKI", "models.providers.openai.apiKey", "${file:" + filepath.Join(ls.PKIDir(), "gateway.token") + "}", "is outside the file roots"},
		{"a reference to /etc", "models.providers.openai.apiKey", "${file:/etc/passwd}", "is outside the file roots"},
		{"dot-dot out of the root", "models.providers.openai.apiKey", "${file:../../etc/passwd}", "leaves the file root"},
		{"a root over the gateway's state", "secrets.fileRoots", `["` + ls.StateDir(testharness.Gateway) + `"]`, "secrets.fileRoots"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: tt.path, Value: tt.value, ValueIsString: strings.HasPrefix(tt.value, "$")})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tt.want)
			after, err := os.ReadFile(ls.ConfigPath())
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing written")
		})
	}

	// A client (gateway token, no owner certificate) may list but not write.
	caOnly, err := ls.CAOnlyTLS(testharness.Gateway)
	require.NoError(t, err)
	tok, err := ls.GatewayToken()
	require.NoError(t, err)
	cc, err := ls.Dial(testharness.Gateway, caOnly, tok)
	require.NoError(t, err)
	defer cc.Close()
	client := gatewayv1.NewGatewayClient(cc)
	_, err = client.PutSecretFile(ctx, &gatewayv1.PutSecretFileRequest{Name: "x", Content: []byte("x")})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = os.Stat(filepath.Join(files, "x"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// secretFilesGID is the group docker-compose.yml gives secretsd and the
// gateway (group_add) for the secret-files volume.
const secretFilesGID = 65110

// TestSecretFilesCompose runs the compose arrangement on the real images:
// a setgid 2750 dir owned by secretsd's uid and the shared group, mounted
// rw into secretsd and read-only into the gateway at /secret-files (the
// default file root). The owner puts the provider key through the gateway,
// secretsd writes it 0640, and the gateway (another uid, same group) reads
// it for ${file:openai.key}: the fake model sees exactly that key.
func TestSecretFilesCompose(t *testing.T) {
	files := filepath.Join(t.TempDir(), "secret-files")
	require.NoError(t, os.Mkdir(files, 0o750))
	require.NoError(t, os.Chown(files, testharness.UIDs()[testharness.Secretsd], secretFilesGID))
	require.NoError(t, os.Chmod(files, 0o750|os.ModeSetgid))
	gid := strconv.Itoa(secretFilesGID)
	cfg, err := json.Marshal(map[string]any{
		"version":  1,
		"channels": map[string]any{"local": map[string]any{"dm": map[string]any{"policy": "allowlist", "allowFrom": []string{"owner"}}}},
		"agents":   map[string]any{"defaults": map[string]any{"backend": "openai"}},
		"models": map[string]any{"providers": map[string]any{"openai": map[string]any{
			"baseUrl": "http://" + fakeOpenAIAlias + ":8082/v1", "model": "gpt-fake", "apiKey": "${file:openai.key}",
		}}},
	})
	require.NoError(t, err)
	// The gateway resolves every reference at start, so the file exists
	// first (as after an earlier put-file); the owner's put-file below
	// replaces it through secretsd.
	placeholder := filepath.Join(files, "openai.key")
	require.NoError(t, os.WriteFile(placeholder, []byte("placeholder"), 0o640))
	require.NoError(t, os.Chown(placeholder, testharness.UIDs()[testharness.Secretsd], secretFilesGID))
	st := testharness.Start(t, testharness.Options{
		GatewayConfig: cfg,
		Services:      []string{testharness.Secretsd, testharness.Pairingd, testharness.Gateway},
		Service: map[string]testharness.ServiceOptions{
			testharness.Secretsd: {Binds: []string{files + ":/secret-files"}, GroupAdd: []string{gid}, Env: map[string]string{"MOLTBOT_SECRET_FILES_DIR": "/secret-files"}},
			testharness.Gateway:  {Binds: []string{files + ":/secret-files:ro"}, GroupAdd: []string{gid}},
		},
	})
	fake := startFakeOpenAI(t, st)
	gw := st.AdminGateway(t)
	ctx := ctxFor(t, 2*time.Minute)

	// Through the owner's CLI, the key on stdin.
	bin := moltbotBinary(t)
	addr, err := st.Addr(ctx, testharness.Gateway)
	require.NoError(t, err)
	bundle, err := st.ExportClientBundle(t.TempDir())
	require.NoError(t, err)
	env := []string{"MOLTBOT_STATE_DIR=" + bundle, "MOLTBOT_GATEWAY=" + addr, "CLAWDBOT_GATEWAY_TOKEN="}
	res := runMoltbotStdin(ctx, t, bin, env, fakeOpenAIKey+"\n", "secrets", "put-file", "openai.key")
	require.Equalf(t, 0, res.code, "put-file: %s", res.out)
	require.Contains(t, res.out, "replaced openai.key")
	require.NotContains(t, res.out, fakeOpenAIKey, "the content is never printed")
	res = runMoltbotStdin(ctx, t, bin, env, "", "secrets", "list-files")
	require.Equalf(t, 0, res.code, "list-files: %s", res.out)
	require.Contains(t, res.out, "${file:openai.key}")
	require.NotContains(t, res.out, fakeOpenAIKey)

	// Bounds through the real CLI: a value over 1 MiB on stdin and a
	// 50,000-deep one are errors (exit 1) naming the limit, never truncated,
	// never a raw gRPC status text.
	for _, tc := range []struct{ name, stdin, want string }{
		{"over 1 MiB", strings.Repeat("a", 1<<20+1), "the limit is 1 MiB"},
		{"50,000 deep", strings.Repeat("[", 50000) + strings.Repeat("]", 50000), "value nests 50000 deep; the limit is 62"},
	} {
		t.Run("config set - "+tc.name, func(t *testing.T) {
			res := runMoltbotStdin(ctx, t, bin, env, tc.stdin, "config", "set", "agents.list", "-")
			require.Equalf(t, 1, res.code, "output: %.300s", res.out)
			require.Contains(t, res.out, tc.want)
			require.NotContains(t, res.out, "rpc error")
		})
	}

	fi, err := os.Stat(placeholder)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	require.Equal(t, uint32(secretFilesGID), fi.Sys().(*syscall.Stat_t).Gid, "the setgid dir gives the file the shared group")

	rl, err := gw.Reload(ctx, &gatewayv1.ReloadRequest{})
	require.NoError(t, err)
	require.True(t, rl.GetApplied(), "%v", rl.GetProblems())
	r, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "owner", Text: "hello"})
	require.NoError(t, err, "the gateway read the file through the shared group")
	require.True(t, r.GetReachedAgent(), r.GetDecision())
	reqs, err := fakeRequests(fake)
	require.NoError(t, err)
	require.NotEmpty(t, reqs)
	require.True(t, reqs[len(reqs)-1].Authorized, "the model got the key from the secret file")

	// The gateway's mount is read-only and outside-root references are
	// refused, so a client-chosen baseUrl gets nothing else.
	_, err = gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "models.providers.openai.apiKey", Value: "${file:/pki/gateway.token}", ValueIsString: true})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), `outside the file roots "/secret-files"`)
}
