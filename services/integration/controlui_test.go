//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// Issue 16: the Control UI in Debian's headless Chromium, driven with
// chromedp, against a local stack (real daemons, real mTLS) and the real
// moltbot CLI. Screenshots of each view go to $MOLTBOT_ARTIFACTS (default
// .artifacts/controlui at the repository root) for a person to look at.

func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatal("chromium not installed: `apt-get install chromium` (make test-integration does it)")
	return ""
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("MOLTBOT_ARTIFACTS")
	if d == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		require.NoError(t, err)
		d = filepath.Join(root, ".artifacts")
	}
	d = filepath.Join(d, "controlui")
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// browserProfile is one Chromium with its own profile (its own IndexedDB,
// so its own device key).
func browserProfile(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // as root Chromium needs it (CI runs as root)
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancel)
	bctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	require.NoError(t, chromedp.Do(bctx)) // start the browser now
	return bctx
}

func shot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	require.NoError(t, chromedp.Do(bctx, chromedp.Sleep(300*time.Millisecond)))
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(artifactsDir(t), name+".png"), png, 0o644))
}

func textOf(t *testing.T, bctx context.Context, sel string) string {
	t.Helper()
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(sel))))
	s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err)
	return s
}

// waitText waits until sel's text matches re.
func waitText(t testing.TB, bctx context.Context, sel string, re *regexp.Regexp, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var s string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(bctx, 2*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		s = got
		if err == nil && re.MatchString(s) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
	dbg, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('msg').textContent + ' | ' + document.getElementById('banner').textContent`))
	t.Fatalf("%s: text %q does not match %s after %s (page says: %s)", sel, s, re, within, dbg)
	return ""
}

var fpRe = regexp.MustCompile(`^[0-9a-f]{4}(-[0-9a-f]{4}){4}$`)

// login types the gateway token and returns the fingerprint the page shows.
func login(t testing.TB, bctx context.Context, url, token string) string {
	t.Helper()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(url)))
	if err := chromedp.Do(ctxWithin(bctx, 15*time.Second), chromedp.WaitVisible(chromedp.CSS("#token"))); err != nil {
		dbg, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.URL + " :: " + document.documentElement.outerHTML`))
		idb, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`new Promise(r => { const q = indexedDB.open('moltbot-ui', 1); q.onsuccess = () => r('ok ' + Array.from(q.result.objectStoreNames)); q.onerror = () => r('err ' + q.error); q.onblocked = () => r('blocked'); setTimeout(() => r('timeout'), 3000); })`, chromedp.EvalAwaitPromise))
		t.Fatalf("no login form: %v; indexedDB: %s; the page shows: %s", err, idb, dbg[:200])
	}
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-button")),
	))
	fp := waitText(t, bctx, "#fingerprint", fpRe, 15*time.Second)
	return fp
}

func TestControlUIInChromium(t *testing.T) {
	l := testharness.StartLocal(t, testharness.LocalOptions{
		GatewayConfig: []byte(`{"version":1,"channels":{"local":{"dm":{"policy":"pairing"}}}}`),
	})
	ctx := ctxFor(t, 4*time.Minute)
	cli := localCLI(t, l)
	gw := l.AdminGateway(t)
	token, err := l.GatewayToken()
	require.NoError(t, err)

	// `moltbot ui` prints where the page is.
	r := cli("ui")
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, strings.TrimPrefix(l.UIURL(), "http://"))
	url := l.UIURL() + "/"

	// 1. Log in with the token: the device is pending; the CLI lists it.
	owner := browserProfile(t, ctx)
	fp := login(t, owner, url, token)
	shot(t, owner, "01-pending")
	r = cli("devices", "list")
	require.Equal(t, 0, r.code, r.out)
	require.Regexp(t, regexp.QuoteMeta(fp)+`\s+pending`, r.out)

	// 2. Approve it with the CLI: the page (polling its session) shows
	// status and the audit score without a reload.
	r = cli("devices", "approve", fp)
	require.Equal(t, 0, r.code, r.out)
	require.Contains(t, r.out, "approved device "+fp+" as owner")
	waitText(t, owner, "#role", regexp.MustCompile(`^owner$`), 20*time.Second)
	waitText(t, owner, "#audit-score", regexp.MustCompile(`^\d+$`), 20*time.Second)
	require.Contains(t, textOf(t, owner, "#view-status"), "gateway")
	shot(t, owner, "02-status")

	// 3. A local-channel stranger writes: the request appears live.
	require.NoError(t, chromedp.Do(owner, chromedp.Click(chromedp.CSS(`#nav button[data-view="pairing"]`))))
	waitText(t, owner, "#pairing-live", regexp.MustCompile(`^live$`), 10*time.Second)
	sr, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "stranger", Text: "hello?"})
	require.NoError(t, err)
	require.False(t, sr.GetReachedAgent())
	code := codeIn(t, strings.Join(sr.GetReplies(), "\n"))
	approveBtn := `button.approve[data-code="` + code + `"]`
	require.NoError(t, chromedp.Do(ctxWithin(owner, 10*time.Second), chromedp.WaitVisible(chromedp.CSS(approveBtn))),
		"the pending request appears without a reload")
	shot(t, owner, "03-pairing")

	// 4. Click approve: the stranger's next message is answered.
	clickLive(t, owner, approveBtn)
	waitText(t, owner, "#msg", regexp.MustCompile(`Done`), 10*time.Second)
	sr, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "stranger", Text: "hello again"})
	require.NoError(t, err)
	require.True(t, sr.GetReachedAgent(), "replies: %v", sr.GetReplies())

	// The other views, for the screenshots (and that each renders).
	for _, v := range []struct{ view, sel string }{
		{"audit", "#audit-score"}, {"sandboxes", "#view-sandboxes h2"}, {"seclog", "#seclog-lines"}, {"devices", "#view-devices table"},
	} {
		require.NoError(t, chromedp.Do(ctxWithin(owner, 20*time.Second),
			chromedp.Click(chromedp.CSS(`#nav button[data-view="`+v.view+`"]`)), chromedp.WaitVisible(chromedp.CSS(v.sel))), v.view)
		if v.view == "seclog" {
			waitText(t, owner, "#seclog-verify", regexp.MustCompile(`^chain verified \(\d+ lines\), following$`), 10*time.Second)
			require.Contains(t, textOf(t, owner, "#seclog-lines"), "device.approve")
		}
		shot(t, owner, "04-"+v.view)
	}

	// A second profile whose device is not approved: the token gives the
	// client role, and approving is refused with the reason shown.
	other := browserProfile(t, ctx)
	fp2 := login(t, other, url, token)
	require.NotEqual(t, fp, fp2)
	sr, err = gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: "stranger2", Text: "hi"})
	require.NoError(t, err)
	code2 := codeIn(t, strings.Join(sr.GetReplies(), "\n"))
	approveCode := func(bctx context.Context) {
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`#nav button[data-view="pairing"]`)),
			chromedp.WaitVisible(chromedp.CSS("#approve-code")),
			chromedp.SendKeys(chromedp.CSS("#approve-code"), code2),
			chromedp.Click(chromedp.CSS("#approve-code-button"))))
	}
	approveCode(other)
	msg := waitText(t, other, "#msg", regexp.MustCompile(`Refused \(403\).*Approve`), 10*time.Second)
	require.Contains(t, msg, "not approved yet")
	shot(t, other, "05-refused")

	// With dangerouslyDisableDeviceAuth the same profile gets in (as the
	// owner), and the audit shows CRITICAL.
	r = cli("config", "set", "gateway.controlUi.dangerouslyDisableDeviceAuth", "true")
	require.Equal(t, 0, r.code, r.out)
	require.NoError(t, chromedp.Do(other, chromedp.Reload()))
	waitText(t, other, "#role", regexp.MustCompile(`^owner$`), 15*time.Second)
	approveCode(other)
	waitText(t, other, "#msg", regexp.MustCompile(`Done`), 10*time.Second)
	require.NoError(t, chromedp.Do(ctxWithin(other, 20*time.Second),
		chromedp.Click(chromedp.CSS(`#nav button[data-view="audit"]`)), chromedp.WaitVisible(chromedp.CSS("#audit-score"))))
	audit := textOf(t, other, "#audit-out")
	require.Contains(t, audit, "CRITICAL")
	require.Contains(t, audit, "dangerouslyDisableDeviceAuth")
	shot(t, other, "06-device-auth-disabled-audit")
	// --deep shows the effect live: a fresh device key got a session.
	deep := func() string {
		a, err := gw.Audit(ctx, &gatewayv1.AuditRequest{Deep: true})
		require.NoError(t, err)
		for _, f := range a.GetFindings() {
			if f.GetId() == "deep.control_ui.device_approval" {
				return f.GetSeverity()
			}
		}
		return "absent"
	}
	require.Equal(t, "critical", deep())
	r = cli("config", "set", "gateway.controlUi.dangerouslyDisableDeviceAuth", "--unset")
	require.Equal(t, 0, r.code, r.out)
	require.Equal(t, "info", deep(), "the probe passes once the flag is gone")
	r = cli("devices", "list")
	require.NotContains(t, r.out, "probe", "the probe's device is dropped")

	// Revoking the owner's device ends its session at once: the next call
	// is refused and the page is back at the login.
	r = cli("devices", "revoke", fp)
	require.Equal(t, 0, r.code, r.out)
	require.NoError(t, chromedp.Do(owner, chromedp.Click(chromedp.CSS(`#nav button[data-view="status"]`))))
	waitText(t, owner, "#msg", regexp.MustCompile(`revoked`), 10*time.Second)
	require.NoError(t, chromedp.Do(ctxWithin(owner, 10*time.Second), chromedp.WaitVisible(chromedp.CSS("#token"))), "back at the login")
	shot(t, owner, "07-revoked")
	r = cli("security", "log", "--json")
	if r.code == 0 {
		for _, k := range []string{"device.register", "device.approve", "device.revoke"} {
			require.Contains(t, r.out, k)
		}
	}
}

// clickLive clicks sel in a list that live events may re-render between
// finding the node and clicking it: it retries with the fresh node.
func clickLive(t testing.TB, bctx context.Context, sel string) {
	t.Helper()
	var err error
	for range 5 {
		if err = chromedp.Do(ctxWithin(bctx, 5*time.Second), chromedp.Click(chromedp.CSS(sel))); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("click %s: %v", sel, err)
}

func ctxWithin(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	go func() { <-c.Done(); cancel() }()
	return c
}
