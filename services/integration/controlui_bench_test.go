//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// The Control UI's performance targets, as benchmarks `make bench` runs
// (services/cmd/benchreport rows "Control UI ..."): each sub-benchmark is
// one side of a row, run in its own process, and benchreport takes the
// ratio. Headless Debian Chromium through chromedp against a local stack.
// The set-up (stack, browser) is in the parent, so the N=1 probe run and
// the timed run share it and the probe warms the browser.

// navTiming is what the page's own Navigation Timing entry says.
type navTiming struct {
	Status      int     `json:"status"`
	Interactive float64 `json:"interactive"` // ms from navigation start
	Title       string  `json:"title"`
}

// BenchmarkControlUI: the UI page's domInteractive against a static page
// from the same listener (target <= 3x), in ms per load.
func BenchmarkControlUI(b *testing.B) {
	l := testharness.StartLocal(b, testharness.LocalOptions{})
	br := browserProfile(b, ctxFor(b, 8*time.Minute))
	base := l.UIURL()
	// One load of each first, so neither side's figure has the browser's
	// cold start (the first connection, the first process for the origin).
	for _, u := range []string{base + "/static/plain.html", base + "/"} {
		require.NoError(b, chromedp.Do(br, chromedp.Navigate(u)))
	}
	require.NoError(b, chromedp.Do(ctxWithin(br, 10*time.Second), chromedp.WaitVisible(chromedp.CSS("#token"))))
	for _, c := range []struct {
		name, url string
		ready     func(b *testing.B, nt navTiming) // the functional check of each load
	}{
		{"path=ui-page", base + "/", func(b *testing.B, _ navTiming) {
			// Let the page finish booting (its IndexedDB open) before the
			// next navigation, as a person would; the login form shows it.
			require.NoError(b, chromedp.Do(ctxWithin(br, 10*time.Second), chromedp.WaitVisible(chromedp.CSS("#token"))),
				"the UI page shows its login form")
		}},
		{"path=static-page", base + "/static/plain.html", func(b *testing.B, nt navTiming) {
			require.Equal(b, "static reference page", nt.Title, "the static reference page is served")
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var loads []float64
			for b.Loop() {
				require.NoError(b, chromedp.Do(br, chromedp.Navigate(c.url)))
				nt, err := chromedp.Run(br, chromedp.Evaluate[navTiming](`(() => { const n = performance.getEntriesByType('navigation')[0];
  return { status: n.responseStatus, interactive: n.domInteractive, title: document.title }; })()`))
				require.NoError(b, err)
				require.Equal(b, 200, nt.Status, "%s answered", c.url)
				c.ready(b, nt)
				loads = append(loads, nt.Interactive)
			}
			// The median of the navigations (the measure): one slow
			// load (a GC, a timer) does not move it.
			slices.Sort(loads)
			b.ReportMetric(loads[len(loads)/2], "ms/load")
		})
	}
}

// BenchmarkPairingVisible: a pairing request from a local-channel stranger
// visible in the page (logged in as the owner, on the pairing view) against
// `moltbot pairing watch` (already connected) printing it, both timed from
// the send (target <= 2x), in ms per request. Each round waits for both, so
// the two sides' processes do the same work and differ only in which one
// they report.
func BenchmarkPairingVisible(b *testing.B) {
	l := testharness.StartLocal(b, testharness.LocalOptions{
		GatewayConfig: []byte(`{"version":1,"channels":{"local":{"dm":{"policy":"pairing"}}}}`),
	})
	ctx := ctxFor(b, 8*time.Minute)
	cli := localCLI(b, l)
	gw := l.AdminGateway(b)
	token, err := l.GatewayToken()
	require.NoError(b, err)

	br := browserProfile(b, ctx)
	fp := login(b, br, l.UIURL()+"/", token)
	r := cli("devices", "approve", fp)
	require.Equal(b, 0, r.code, r.out)
	waitText(b, br, "#role", regexp.MustCompile(`^owner$`), 20*time.Second)
	require.NoError(b, chromedp.Do(br, chromedp.Click(chromedp.CSS(`#nav button[data-view="pairing"]`))))
	waitText(b, br, "#pairing-live", regexp.MustCompile(`^live$`), 10*time.Second)
	// The page's own clock says when a request's row appeared (a poll from
	// here would add the DevTools round trips to the page's time).
	_, err = chromedp.Run(br, chromedp.Evaluate[string](`window.__seen = {};
new MutationObserver(() => { for (const b of document.querySelectorAll('button.approve[data-code]')) {
  if (!(b.dataset.code in window.__seen)) window.__seen[b.dataset.code] = performance.timeOrigin + performance.now(); } })
  .observe(document.getElementById('view'), { subtree: true, childList: true }); 'ok'`))
	require.NoError(b, err)

	lines := pairingWatch(b, ctx, l)

	sent := 0
	// round sends one request and returns when the page and the watch each
	// showed it, timed from the send.
	round := func(b *testing.B) (page, watch time.Duration) {
		sent++
		t0 := time.Now()
		sr, err := gw.Send(ctx, &gatewayv1.SendRequest{Channel: "local", From: fmt.Sprintf("bench-stranger-%d", sent), Text: "hi"})
		require.NoError(b, err)
		code := codeIn(b, strings.Join(sr.GetReplies(), "\n"))
		for watch == 0 {
			select {
			case ln, ok := <-lines:
				require.True(b, ok, "pairing watch ended")
				if strings.Contains(ln, code) {
					watch = time.Since(t0)
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("pairing watch did not print request %s within 10 s", code)
			}
		}
		row := `button.approve[data-code="` + code + `"]`
		if err := chromedp.Do(ctxWithin(br, 10*time.Second), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
			dbg, _ := chromedp.Run(br, chromedp.Evaluate[string](`document.getElementById('view').innerText + ' | ' + document.getElementById('msg').textContent`))
			b.Fatalf("request %s not shown: %v; the page shows: %s", code, err, dbg)
		}
		seen, err := chromedp.Run(br, chromedp.Evaluate[float64](`window.__seen["`+code+`"]`))
		require.NoError(b, err)
		page = time.Duration(seen*float64(time.Millisecond)) - time.Duration(t0.UnixNano())
		// Approve it from the page: the pending queue is bounded per channel.
		clickLive(b, br, row)
		require.NoError(b, chromedp.Do(ctxWithin(br, 10*time.Second), chromedp.WaitNotPresent(chromedp.CSS(row))),
			"the approved request leaves the page")
		return page, watch
	}
	round(b) // warm-up, shared by both sides: the first event on the stream and the first row drawn
	for _, c := range []struct {
		name string
		pick func(page, watch time.Duration) time.Duration
	}{
		{"path=ui", func(page, _ time.Duration) time.Duration { return page }},
		{"path=pairing-watch", func(_, watch time.Duration) time.Duration { return watch }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += c.pick(round(b))
			}
			b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "ms/request")
		})
	}
}

// pairingWatch starts `moltbot pairing watch` as the owner against l and
// returns its stdout lines once the stream is open; it ends with b.
func pairingWatch(b *testing.B, ctx context.Context, l *testharness.LocalStack) <-chan string {
	b.Helper()
	bundle := b.TempDir()
	require.NoError(b, os.MkdirAll(filepath.Join(bundle, "pki"), 0o700))
	for _, n := range []string{"ca.pem", "cli.pem", "cli-key.pem", "cli.token"} {
		data, err := os.ReadFile(filepath.Join(l.PKIDir(), n))
		require.NoError(b, err)
		require.NoError(b, os.WriteFile(filepath.Join(bundle, "pki", n), data, 0o600))
	}
	wctx, stop := context.WithCancel(ctx)
	watch := exec.CommandContext(wctx, moltbotBinary(b), "pairing", "watch")
	watch.Env = append(os.Environ(), "HOME="+bundle, "MOLTBOT_STATE_DIR="+bundle, "MOLTBOT_GATEWAY="+l.Addr(testharness.Gateway), "CLAWDBOT_GATEWAY_TOKEN=")
	out, err := watch.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, watch.Start())
	b.Cleanup(func() { stop(); _ = watch.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	time.Sleep(time.Second) // the watch stream is open
	return lines
}
