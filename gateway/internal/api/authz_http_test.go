package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
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
	"github.com/moltbot/moltbot-secure/gateway/internal/api/sandboxproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	"github.com/moltbot/moltbot-secure/gateway/internal/pairingproxy"
	"github.com/moltbot/moltbot-secure/gateway/internal/webui"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// deviceSession approves a new device with role and opens a session for
// origin, as the page does (sign the nonce bound to the origin).
func deviceSession(t *testing.T, st *devices.Store, ss *devices.Sessions, origin, role string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	d, err := st.Register(pub, role, origin)
	require.NoError(t, err)
	_, err = st.Approve(d.Fingerprint, role)
	require.NoError(t, err)
	n, err := ss.Challenge(d.Fingerprint, origin)
	require.NoError(t, err)
	tok, _, err := ss.Open(d.Fingerprint, origin, n, ed25519.Sign(priv, devices.SignedMessage(origin, d.Fingerprint, n)), false)
	require.NoError(t, err)
	return tok
}

// TestClientPortMatrixOverHTTP is TestClientPortMatrix for the Control UI:
// every method served on the client port, called over HTTP through the UI's
// adapter (the same registrations, the same api.Authz table) as every kind
// of web caller. The only difference the adapter may make is to refuse the
// methods api.NotOverHTTP names, for every role.
func TestClientPortMatrixOverHTTP(t *testing.T) {
	const gwTok = "matrix-gateway-token-0123456789abcdefghijkl"
	up := upstreams(t)
	pp, err := pairingproxy.New(pairingproxy.Config{Client: pairingv1.NewPairingClient(up), HasChannel: func(string) bool { return true }})
	require.NoError(t, err)
	sp := sandboxproxy.New(sandboxproxy.Config{Sandbox: sandboxv1.NewSandboxClient(up)})
	st, err := devices.Open(filepath.Join(t.TempDir(), devices.File))
	require.NoError(t, err)
	ss := devices.NewSessions(st)
	svc := api.New(api.Config{Token: func() string { return gwTok }, Devices: api.DevicesDeps{Store: st, Sessions: ss}})
	services := &webui.Services{}
	// Registered exactly as on the gRPC server (app.Run, startClientPort).
	api.RegisterService(services, svc)
	pairingproxy.RegisterService(services, pp)
	sandboxproxy.RegisterService(services, sp)
	gw := auth.NewGatewayToken(gwTok)
	ui, err := webui.New(webui.Config{
		Services: services, Devices: st, Sessions: ss,
		Rules:       webui.Rules{Table: api.Authz(), NotOverHTTP: api.NotOverHTTP, Guard: gw.StreamGuard()},
		VerifyToken: func(tok string) (uint64, bool) { _, g, ok := gw.Verify("", tok); return g, ok },
		Settings:    func() webui.Settings { return webui.Settings{} },
		Limiter:     &auth.Limiter{Max: 1 << 20, Window: time.Minute, Lockout: time.Minute, MaxEntries: 1024, Now: time.Now},
	})
	require.NoError(t, err)
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	origin := srv.URL

	callers := []struct {
		name string
		hdr  map[string]string
		role string // "" = not authenticated
	}{
		{"no credential", nil, ""},
		{"wrong token", map[string]string{"Authorization": "Bearer not-the-token"}, ""},
		{"revoked or made-up session", map[string]string{webui.SessionHeader: "bm90LWEtc2Vzc2lvbg"}, ""},
		{"token only (client)", map[string]string{"Authorization": "Bearer " + gwTok}, auth.RoleClient},
		{"device approved --role client", map[string]string{webui.SessionHeader: deviceSession(t, st, ss, origin, auth.RoleClient)}, auth.RoleClient},
		{"device approved as owner", map[string]string{webui.SessionHeader: deviceSession(t, st, ss, origin, auth.RoleOwner)}, auth.RoleOwner},
	}
	tbl := api.Authz()
	n := 0
	for _, d := range api.ClientPortServices() {
		for _, m := range fullNames(d) {
			require.NotEmpty(t, m)
			for _, c := range callers {
				n++
				t.Run(strings.TrimPrefix(m, "/")+"/"+c.name, func(t *testing.T) {
					req, err := http.NewRequest("POST", srv.URL+"/api"+m, strings.NewReader("{}"))
					require.NoError(t, err)
					req.Header.Set("Origin", origin)
					req.Header.Set("Content-Type", "application/json")
					for k, v := range c.hdr {
						req.Header.Set(k, v)
					}
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var e struct{ Code, Message string }
					_ = json.Unmarshal(b, &e)
					switch {
					case c.role == "":
						require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", b)
					case tbl.Allowed(m, c.role) && api.NotOverHTTP(m) == "":
						require.NotContains(t, []int{401, 403}, resp.StatusCode, "%s", b)
					default:
						require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", b)
						if c.role == auth.RoleClient && tbl.Allowed(m, auth.RoleOwner) {
							require.Contains(t, e.Message, "owner only:")
						}
						if tbl.Allowed(m, c.role) {
							require.Contains(t, e.Message, "not offered to the Control UI")
						}
					}
				})
			}
		}
	}
	require.Greater(t, n, 6*40, "every method as every caller")
}
