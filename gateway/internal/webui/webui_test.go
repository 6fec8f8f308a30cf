package webui_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	"github.com/moltbot/moltbot-secure/gateway/internal/webui"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

const token = "test-gateway-token-0123456789abcdefghijklmnop"

type fixture struct {
	srv      *httptest.Server
	store    *devices.Store
	settings *webui.Settings
	origin   string
}

// newFixture serves the UI over the real Gateway service implementation
// (api.New) and the real table, on a real loopback listener.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := devices.Open(filepath.Join(t.TempDir(), devices.File))
	require.NoError(t, err)
	sess := devices.NewSessions(st)
	key := make([]byte, seclog.KeySize)
	_, _ = rand.Read(key)
	sl, err := seclog.Open(t.TempDir(), key)
	require.NoError(t, err)
	t.Cleanup(func() { sl.Close() })
	require.NoError(t, sl.Record(seclog.Event{Kind: "test.start"}))
	svc := api.New(api.Config{Token: func() string { return token }, Devices: api.DevicesDeps{Store: st, Sessions: sess, Log: sl},
		Ops: api.OpsDeps{SecLog: sl}})
	services := &webui.Services{}
	api.RegisterService(services, svc)
	gw := auth.NewGatewayToken(token)
	f := &fixture{store: st, settings: &webui.Settings{}}
	ui, err := webui.New(webui.Config{
		Services: services,
		Rules:    webui.Rules{Table: api.Authz(), NotOverHTTP: api.NotOverHTTP, Guard: gw.StreamGuard()},
		Devices:  st, Sessions: sess,
		VerifyToken: func(tok string) (uint64, bool) { _, g, ok := gw.Verify("", tok); return g, ok },
		Settings:    func() webui.Settings { return *f.settings },
		Limiter:     &auth.Limiter{Max: 1000, Window: time.Minute, Lockout: time.Minute, MaxEntries: 100, Now: time.Now},
		Version:     "test",
	})
	require.NoError(t, err)
	f.srv = httptest.NewServer(ui)
	t.Cleanup(f.srv.Close)
	f.origin = f.srv.URL
	return f
}

func (f *fixture) do(t testing.TB, method, path, host, origin string, body any, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHostAndOriginChecks(t *testing.T) {
	f := newFixture(t)
	port := f.srv.URL[strings.LastIndexByte(f.srv.URL, ':'):]
	*f.settings = webui.Settings{AllowedOrigins: []string{"https://gw.tailnet.ts.net"}}
	for _, tc := range []struct {
		name, host, origin string
		want               int
	}{
		{"loopback page", "", "", 200},
		{"localhost name", "localhost" + port, "", 200},
		{"ipv6 loopback", "[::1]" + port, "", 200},
		{"DNS rebinding: foreign Host", "evil.example" + port, "", 403},
		{"LAN address as Host", "192.168.1.20" + port, "", 403},
		{"allowed proxy Host", "gw.tailnet.ts.net", "", 200},
		{"same-origin Origin", "", f.origin, 200},
		{"cross-site Origin", "", "https://evil.example", 403},
		{"Origin of another loopback port", "", "http://127.0.0.1:1", 403},
		{"allowed proxy Origin", "", "https://gw.tailnet.ts.net", 200},
		{"null Origin", "", "null", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, "GET", "/", tc.host, tc.origin, nil, nil)
			require.Equal(t, tc.want, resp.StatusCode, string(body))
		})
	}
	// A POST needs an Origin (browsers always send one) and JSON.
	resp, _ := f.do(t, "POST", "/auth/challenge", "", "", map[string]string{}, nil)
	require.Equal(t, 403, resp.StatusCode)
	req, _ := http.NewRequest("POST", f.srv.URL+"/auth/challenge", strings.NewReader("fingerprint=x"))
	req.Header.Set("Origin", f.origin)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, 403, r2.StatusCode, "a form post (CSRF) is refused")
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/", "/static/app.js", "/static/style.css"} {
		resp, body := f.do(t, "GET", p, "", "", nil, nil)
		require.Equal(t, 200, resp.StatusCode, p)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Equal(t, webui.CSP, csp, p)
		require.Contains(t, csp, "frame-ancestors 'none'")
		require.Contains(t, csp, "script-src 'self'")
		require.NotContains(t, csp, "unsafe-inline")
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		if p == "/" {
			html := string(body)
			require.NotRegexp(t, `<script(?:\s[^>]*)?>\s*[^<\s]`, html, "no inline script")
			require.NotContains(t, html, "style=", "no inline style")
			require.NotRegexp(t, `(src|href)="(https?:)?//`, html, "no third-party asset")
		}
	}
	resp, _ := f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/Status", "", f.origin, map[string]any{}, nil)
	require.Equal(t, 401, resp.StatusCode, "the API needs a credential")
	require.Equal(t, webui.CSP, resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Empty(t, resp.Header.Get("Set-Cookie"))
}

// browser is a device as the page makes it: an Ed25519 key, registered
// with the token, signing the server's nonce bound to the origin.
type browser struct {
	f    *fixture
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	fp   string
}

func newBrowser(t *testing.T, f *fixture) *browser {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &browser{f: f, pub: pub, priv: priv, fp: devices.Fingerprint(pub)}
}

func (b *browser) register(t *testing.T, tok string) (*http.Response, map[string]string) {
	resp, body := b.f.do(t, "POST", "/auth/register", "", b.f.origin, map[string]string{
		"token": tok, "publicKey": base64.StdEncoding.EncodeToString(b.pub), "name": "test browser"}, nil)
	var out map[string]string
	_ = json.Unmarshal(body, &out)
	return resp, out
}

func (b *browser) login(t *testing.T) (int, map[string]any) {
	resp, body := b.f.do(t, "POST", "/auth/challenge", "", b.f.origin, map[string]string{"fingerprint": b.fp}, nil)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	var c map[string]string
	require.NoError(t, json.Unmarshal(body, &c))
	sig := ed25519.Sign(b.priv, devices.SignedMessage(b.f.origin, b.fp, c["nonce"]))
	resp, body = b.f.do(t, "POST", "/auth/session", "", b.f.origin, map[string]string{
		"fingerprint": b.fp, "nonce": c["nonce"], "signature": base64.StdEncoding.EncodeToString(sig)}, nil)
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out
}

func (f *fixture) call(t *testing.T, method string, hdr map[string]string, body any) (int, map[string]any) {
	resp, b := f.do(t, "POST", "/api/"+method, "", f.origin, body, hdr)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestDeviceLoginFlow(t *testing.T) {
	f := newFixture(t)
	b := newBrowser(t, f)

	resp, _ := b.register(t, "wrong-token")
	require.Equal(t, 401, resp.StatusCode)
	resp, d := b.register(t, token)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, devices.StatePending, d["state"])
	require.Equal(t, b.fp, d["fingerprint"])

	code, out := b.login(t)
	require.Equal(t, 403, code, "pending")
	require.Equal(t, "pending", out["code"])

	// The token alone is the client role: a view works, a state change is owner only.
	bearer := map[string]string{"Authorization": "Bearer " + token}
	code, _ = f.call(t, "moltbot.gateway.v1.Gateway/Status", bearer, map[string]any{})
	require.Equal(t, 200, code)
	code, out = f.call(t, "moltbot.gateway.v1.Gateway/ApproveDevice", bearer, map[string]any{"fingerprint": b.fp})
	require.Equal(t, 403, code)
	require.Contains(t, out["message"], "owner only")

	_, err := f.store.Approve(b.fp, "")
	require.NoError(t, err)
	code, out = b.login(t)
	require.Equal(t, 200, code, "%v", out)
	require.Equal(t, auth.RoleOwner, out["role"])
	sess := map[string]string{webui.SessionHeader: out["session"].(string)}

	code, out = f.call(t, "moltbot.gateway.v1.Gateway/ListDevices", sess, map[string]any{})
	require.Equal(t, 200, code, "%v", out)
	require.Len(t, out["devices"], 1)

	// Nothing secret reaches the page, whatever the role.
	code, out = f.call(t, "moltbot.gateway.v1.Gateway/RevealConfig", sess, map[string]any{})
	require.Equal(t, 403, code)
	require.Contains(t, out["message"], "not offered to the Control UI")

	// A session credential is bound to its origin.
	resp, _ = f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/ListDevices", "", "https://gw.tailnet.ts.net", map[string]any{}, sess)
	require.Equal(t, 403, resp.StatusCode, "an origin not allowed is refused before anything")
	*f.settings = webui.Settings{AllowedOrigins: []string{"https://gw.tailnet.ts.net"}}
	resp, _ = f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/ListDevices", "", "https://gw.tailnet.ts.net", map[string]any{}, sess)
	require.Equal(t, 401, resp.StatusCode, "the session was opened for the loopback origin")

	// Revoking ends the session at once, and its open stream.
	streamDone := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/moltbot.gateway.v1.Gateway/SecurityLog", strings.NewReader(`{"follow":true}`))
		req.Header.Set("Origin", f.origin)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webui.SessionHeader, sess[webui.SessionHeader])
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			streamDone <- err.Error()
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		streamDone <- r.Header.Get("Content-Type") + "|" + string(b)
	}()
	// The stream stays open (follow) until the revocation below.
	select {
	case got := <-streamDone:
		t.Fatalf("stream ended before the revocation: %s", got)
	case <-time.After(300 * time.Millisecond):
	}
	code, _ = f.call(t, "moltbot.gateway.v1.Gateway/RevokeDevice", sess, map[string]any{"fingerprint": b.fp})
	require.Equal(t, 200, code)
	select {
	case got := <-streamDone:
		require.True(t, strings.HasPrefix(got, "text/event-stream|"), got)
		require.Contains(t, got, "test.start", "the stream sent the log before")
		require.Contains(t, got, "event: end")
	case <-time.After(5 * time.Second):
		t.Fatal("revoking did not end the open stream")
	}
	code, out = f.call(t, "moltbot.gateway.v1.Gateway/ListDevices", sess, map[string]any{})
	require.Equal(t, 401, code, "revoked: the session is gone")
	require.Contains(t, out["message"], "revoked")
	code, _ = b.login(t)
	require.Equal(t, 404, code, "a revoked device must register again")
}

func TestDeprecatedFlags(t *testing.T) {
	f := newFixture(t)
	b := newBrowser(t, f)
	resp, _ := b.register(t, token)
	require.Equal(t, 200, resp.StatusCode)

	// dangerouslyDisableDeviceAuth: the pending device gets in as the owner.
	*f.settings = webui.Settings{DisableDeviceAuth: true}
	code, out := b.login(t)
	require.Equal(t, 200, code, "%v", out)
	require.Equal(t, auth.RoleOwner, out["role"])
	sess := map[string]string{webui.SessionHeader: out["session"].(string)}
	code, _ = f.call(t, "moltbot.gateway.v1.Gateway/ListDevices", sess, map[string]any{})
	require.Equal(t, 200, code)
	*f.settings = webui.Settings{}
	code, _ = b.login(t)
	require.Equal(t, 403, code, "without the flag the device is pending again")
	code, out = f.call(t, "moltbot.gateway.v1.Gateway/ListDevices", sess, map[string]any{})
	require.Equal(t, 401, code, "the session the flag opened ends with the flag")
	require.Contains(t, out["message"], "pending")

	// allowInsecureAuth: the token alone from a non-secure (plain http,
	// non-loopback) allowed origin.
	*f.settings = webui.Settings{AllowedOrigins: []string{"http://lan-host:18793"}}
	hdr := map[string]string{"Authorization": "Bearer " + token}
	resp, body := f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/Status", "", "http://lan-host:18793", map[string]any{}, hdr)
	require.Equal(t, 403, resp.StatusCode, string(body))
	require.Contains(t, string(body), "not a secure origin")
	*f.settings = webui.Settings{AllowedOrigins: []string{"http://lan-host:18793"}, AllowInsecureAuth: true}
	resp, body = f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/Status", "", "http://lan-host:18793", map[string]any{}, hdr)
	require.Equal(t, 200, resp.StatusCode, string(body))
	resp, body = f.do(t, "POST", "/api/moltbot.gateway.v1.Gateway/ListDevices", "", "http://lan-host:18793", map[string]any{}, hdr)
	require.Equal(t, 403, resp.StatusCode, "still the client role: %s", body)
}

func TestPendingQueueBounded(t *testing.T) {
	f := newFixture(t)
	for range devices.MaxPending {
		resp, _ := newBrowser(t, f).register(t, token)
		require.Equal(t, 200, resp.StatusCode)
	}
	resp, out := newBrowser(t, f).register(t, token)
	require.Equal(t, 429, resp.StatusCode)
	require.Contains(t, out["message"], "already pending")
}

// assetBytes is what a browser loads for the page, as served.
func assetBytes(t testing.TB, f *fixture) int {
	total := 0
	for _, p := range []string{"/", "/static/app.js", "/static/dom.js", "/static/style.css"} {
		resp, body := f.do(t, "GET", p, "", "", nil, nil)
		require.Equal(t, 200, resp.StatusCode, p)
		total += len(body)
	}
	return total
}

// The page and everything it loads stay small (BENCHMARKS.md: < 150 KB).
func TestAssetsUnder150KB(t *testing.T) {
	total := assetBytes(t, newFixture(t))
	t.Logf("Control UI assets: %d bytes", total)
	require.Less(t, total, 150<<10)
}

// BenchmarkAssets reports the assets' total size for BENCHMARKS.md.
func BenchmarkAssets(b *testing.B) {
	f := newFixture(b)
	var total int
	for b.Loop() {
		total = assetBytes(b, f)
	}
	b.ReportMetric(float64(total)/1024, "KB")
}
