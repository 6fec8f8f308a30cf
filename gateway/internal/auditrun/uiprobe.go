package auditrun

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	"github.com/moltbot/moltbot-secure/services/audit"
)

// UIProbe is the Control UI half of --deep: it talks to the UI's listener
// as a browser would and reports what the gateway actually does, so the
// deprecated controlUi flags show their effect live.
type UIProbe struct {
	// Addr is the UI listener, dialable host:port.
	Addr string
	// Token returns the gateway token (a browser's login).
	Token func() string
	// Allowed returns gateway.controlUi.allowedOrigins, normalised.
	Allowed func() []string
	// Drop removes the probe's throwaway device afterwards.
	Drop func(fingerprint string)
}

func (u *UIProbe) request(ctx context.Context, method, path, host, origin string, body any, hdr map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, "http://"+u.Addr+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
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
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b, nil
}

func (u *UIProbe) run(ctx context.Context, add func(audit.ProbeResult)) {
	self := "http://" + u.Addr
	// 1. DNS rebinding and framing: a foreign Host is refused; the page
	// forbids framing and inline script.
	code, _, _, err := u.request(ctx, "GET", "/", "moltbot-probe.invalid", "", nil, nil)
	_, hdr, _, err2 := u.request(ctx, "GET", "/", "", "", nil, nil)
	if err == nil {
		err = err2
	}
	csp := hdr.Get("Content-Security-Policy")
	ok := err == nil && code == http.StatusForbidden && strings.Contains(csp, "frame-ancestors 'none'") && !strings.Contains(csp, "unsafe-inline")
	detail := fmt.Sprintf("a request with Host moltbot-probe.invalid got HTTP %d; the page's CSP is %q", code, csp)
	if err != nil {
		detail = "the Control UI did not answer: " + err.Error()
	}
	add(probe("control_ui.origin_enforced", ok, "Control UI refuses foreign Host headers and forbids framing", detail,
		"the UI must check Host/Origin and send its CSP; do not put a proxy in front that rewrites Host to a foreign name"))

	// 2. Device approval: a fresh device key registered with the token
	// must stay pending.
	add(u.deviceProbe(ctx, self))

	// 3. The token alone from a non-secure origin (an allowed plain-http
	// origin on another host) must be refused.
	for _, o := range u.Allowed() {
		pu, err := url.Parse(o)
		if err != nil || pu.Scheme != "http" || isLoopback(pu.Hostname()) {
			continue
		}
		code, _, body, err := u.request(ctx, "POST", "/api/moltbot.gateway.v1.Gateway/Status", pu.Host, o, map[string]any{},
			map[string]string{"Authorization": "Bearer " + u.Token()})
		ok := err == nil && code == http.StatusForbidden
		detail := fmt.Sprintf("a token-only call from %s got HTTP %d %s", o, code, strings.TrimSpace(string(body)))
		if code == http.StatusOK {
			detail = fmt.Sprintf("the bare gateway token logged in from the non-secure origin %s (plain http: the token crosses the network readable): gateway.controlUi.allowInsecureAuth is in effect", o)
		}
		add(probe("control_ui.insecure_auth_refused", ok, "Control UI refuses the bare token from non-secure origins", detail,
			"moltbot security audit --fix (removes gateway.controlUi.allowInsecureAuth); reach the UI through an HTTPS proxy"))
		break
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (u *UIProbe) deviceProbe(ctx context.Context, self string) audit.ProbeResult {
	const title = "Control UI keeps a new device pending until the owner approves it"
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	fp := devices.Fingerprint(pub)
	defer func() {
		if u.Drop != nil {
			u.Drop(fp)
		}
	}()
	inconclusive := func(why string) audit.ProbeResult {
		r := probe("control_ui.device_approval", false, title, "inconclusive: "+why, "moltbot devices list; moltbot status")
		r.Severity = audit.Info
		return r
	}
	code, _, body, err := u.request(ctx, "POST", "/auth/register", "", self,
		map[string]string{"token": u.Token(), "publicKey": base64.StdEncoding.EncodeToString(pub), "name": "security audit --deep probe"}, nil)
	if err != nil || code != http.StatusOK {
		return inconclusive(fmt.Sprintf("registering a probe device got %d %s %v", code, strings.TrimSpace(string(body)), err))
	}
	code, _, body, err = u.request(ctx, "POST", "/auth/challenge", "", self, map[string]string{"fingerprint": fp}, nil)
	var c struct{ Nonce string }
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &c) != nil {
		return inconclusive(fmt.Sprintf("the challenge got %d %v", code, err))
	}
	sig := ed25519.Sign(priv, devices.SignedMessage(self, fp, c.Nonce))
	code, _, body, err = u.request(ctx, "POST", "/auth/session", "", self,
		map[string]string{"fingerprint": fp, "nonce": c.Nonce, "signature": base64.StdEncoding.EncodeToString(sig)}, nil)
	if err != nil {
		return inconclusive(err.Error())
	}
	var r struct{ Code, Role string }
	_ = json.Unmarshal(body, &r)
	switch {
	case code == http.StatusForbidden && r.Code == "pending":
		return probe("control_ui.device_approval", true, title, "a fresh device key registered with the token was kept pending (no session)", "")
	case code == http.StatusOK:
		return probe("control_ui.device_approval", false, title,
			fmt.Sprintf("a fresh, unapproved device key got a session as %s: anyone with the gateway token administers the gateway from a browser (gateway.controlUi.dangerouslyDisableDeviceAuth is in effect)", r.Role),
			"moltbot security audit --fix (removes gateway.controlUi.dangerouslyDisableDeviceAuth)")
	}
	return inconclusive(fmt.Sprintf("the session request got %d %s", code, strings.TrimSpace(string(body))))
}
