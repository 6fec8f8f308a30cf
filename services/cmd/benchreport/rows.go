package main

// rows is every row of BENCHMARKS.md. Targets come from issue 15 where it
// sets one; the others keep the bound the row had, or report only.
func rows(quick bool) []row {
	bt := func(long, short string) string {
		if quick {
			return short
		}
		return long
	}
	le := func(b float64) *Target { return &Target{Op: "<=", Bound: b} }
	ge := func(b float64) *Target { return &Target{Op: ">=", Bound: b} }
	ms := 1e-6
	sb := func(bench, metric, n string) side {
		return side{pkg: "sandboxd/internal/sandbox", bench: bench, metric: metric, time: bt(n, "3x")}
	}
	cs := func(n string) side {
		return side{pkg: "gateway/internal/configstore", bench: "^BenchmarkSet$/^secrets=" + n + "$", metric: "ns/op", time: bt("10x", "3x")}
	}
	pairing := func(op, n string) side {
		// A check takes microseconds: 10,000 of them make its p99 the
		// 100th-slowest call rather than the 20th (a scheduler hiccup).
		t := bt("10000x", "300x")
		if op == "approve" { // three fsyncs a round (request, approve, revoke)
			t = bt("300x", "50x")
		}
		return side{pkg: "pairingd/internal/pairing", bench: "^BenchmarkApprovedSenders$/^op=" + op + "$/^approved=" + n + "$", metric: "p99-ms", time: t}
	}
	e2e := func(sub string) side {
		return side{pkg: "gateway/internal/pipeline", bench: "^BenchmarkTelegramE2E$/^" + sub + "$", metric: "p99-ms", time: "1x"}
	}
	// The Control UI in headless Chromium against a local stack
	// (services/integration: bin/ from make binaries, Debian's chromium).
	uiLoad := func(path string) side {
		return side{pkg: "services/integration", bench: "^BenchmarkControlUI$/^path=" + path + "$", metric: "ms/load", time: bt("10x", "3x")}
	}
	uiPairing := func(path string) side {
		return side{pkg: "services/integration", bench: "^BenchmarkPairingVisible$/^path=" + path + "$", metric: "ms/request", time: bt("5x", "2x")}
	}
	return []row{
		{name: "gRPC unary, full interceptor chain (with the security-log write of each connection's first authentication) vs bare mTLS echo, 16 callers",
			subject:  side{pkg: "services/server", bench: "^BenchmarkChain$/^chain$", metric: "ns/op", time: bt("500ms", "100ms")},
			baseline: &side{pkg: "services/server", bench: "^BenchmarkChain$/^bare$", metric: "ns/op", time: bt("500ms", "100ms")},
			target:   le(1.05), why: "time per call: <= 5 % cost", unit: "us/call", scale: 1e-3},
		{name: "secretsd Encrypt+Decrypt pair vs two bare mTLS echo calls (1 caller)", throughput: true,
			subject:  side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=1$/^secretsd$", metric: "ns/op", time: bt("500ms", "100ms")},
			baseline: &side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=1$/^echo$", metric: "ns/op", time: bt("500ms", "100ms")},
			target:   ge(0.9), why: "ops/s", unit: "us/pair", scale: 1e-3},
		{name: "secretsd Encrypt+Decrypt pair vs two bare mTLS echo calls (16 callers)", throughput: true,
			subject:  side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=16$/^secretsd$", metric: "ns/op", time: bt("500ms", "100ms")},
			baseline: &side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=16$/^echo$", metric: "ns/op", time: bt("500ms", "100ms")},
			target:   ge(0.9), why: "ops/s", unit: "us/pair", scale: 1e-3},
		{name: "AES-256-GCM seal+open of 64 B in process (reference)",
			subject: side{pkg: "secretsd/internal/keyring", bench: "^BenchmarkAESGCM$", metric: "ns/op", time: bt("300ms", "50ms")},
			unit:    "us", scale: 1e-3},
		{name: "keyring seal+open with the JSON envelope, in process (reference)",
			subject: side{pkg: "secretsd/internal/keyring", bench: "^BenchmarkSealOpen$", metric: "ns/op", time: bt("300ms", "50ms")},
			unit:    "us", scale: 1e-3},
		{name: "sandbox warm exec (`true`) via the in-sandbox agent vs `docker exec` CLI",
			subject:  sb("^BenchmarkWarmExec$/^path=agent$", "ns/op", "20x"),
			baseline: ptr(sb("^BenchmarkWarmExec$/^path=docker-exec-cli$", "ns/op", "10x")),
			target:   le(0.03), why: "wall time", unit: "ms", scale: ms},
		{name: "sandbox warm exec (`true`) via the in-sandbox agent vs fork+exec of `true` on the host",
			subject:  sb("^BenchmarkWarmExec$/^path=agent$", "ns/op", "20x"),
			baseline: ptr(sb("^BenchmarkWarmExec$/^path=host-fork-exec$", "ns/op", "20x")),
			target:   le(3), why: "wall time; the host's fork+exec is the physical limit", unit: "ms", scale: ms},
		{name: "sandbox Docker-exec fallback (API) vs `docker exec` CLI",
			subject:  sb("^BenchmarkWarmExec$/^path=docker-exec-api$", "ns/op", "10x"),
			baseline: ptr(sb("^BenchmarkWarmExec$/^path=docker-exec-cli$", "ns/op", "10x")),
			target:   le(0.8), unit: "ms", scale: ms},
		{name: "sandbox cold Ensure + first command (`true`, exit code checked) vs hardened `docker run --rm` CLI of the same command",
			subject:  sb("^BenchmarkCold$/^path=ensure-first-command$", "ns/op", "3x"),
			baseline: ptr(sb("^BenchmarkCold$/^path=docker-run-cli$", "ns/op", "3x")),
			target:   le(0.9), why: "wall time", unit: "ms", scale: ms},
		{name: "new session's first command with the warm pool vs hardened `docker run --rm` CLI",
			subject:  sb("^BenchmarkCold$/^path=pool-first-command$", "ns/op", "3x"),
			baseline: ptr(sb("^BenchmarkCold$/^path=docker-run-cli$", "ns/op", "3x")),
			target:   le(0.2), unit: "ms", scale: ms},
		// Issue 17's row: the first command of a new session that writes into
		// its fresh workspace, as a ratio to the warm-pool figure (the row
		// above's subject: a new session's first command from the pool).
		{name: "new session's first command writing its fresh workspace (warm pool pair) vs the warm-pool figure (a new session's first `true`)",
			subject:  sb("^BenchmarkWorkspaceFirstCommand$/^path=new-session-fresh-workspace$", "ns/op", "5x"),
			baseline: ptr(sb("^BenchmarkCold$/^path=pool-first-command$", "ns/op", "3x")),
			target:   le(1.5), why: "wall time", unit: "ms", scale: ms},
		// What a container's first command costs over a hot one: the warm
		// session runs its commands back to back; the first command runs in
		// a container that has run only the pool's warm-up.
		{name: "new session's first command with a fresh workspace (warm pool pair) vs a warm session's command",
			subject:  sb("^BenchmarkWorkspaceFirstCommand$/^path=new-session-fresh-workspace$", "ns/op", "5x"),
			baseline: ptr(sb("^BenchmarkWorkspaceFirstCommand$/^path=warm-session$", "ns/op", "5x")),
			why:      "reported: a container's first command against a hot one", unit: "ms", scale: ms},
		{name: "20 sessions each running a command at once (warm), p99",
			subject: side{pkg: "sandboxd/internal/sandbox", bench: "^BenchmarkConcurrentSessions$/^sessions=20$/^state=warm$", metric: "p99-ms", time: bt("3x", "1x")},
			why:     "all succeed; reported", unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "pairing Approve p99 with 10,000 pending codes (bbolt, fsync)",
			subject: side{pkg: "pairingd/internal/pairing", bench: "^BenchmarkApprove$", metric: "p99-ms", time: bt("300x", "100x")},
			target:  le(5), unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "inbound policy check (pairingd IsAllowed, bbolt) p99 with 10k approved senders vs 1k",
			subject: pairing("check", "10000"), baseline: ptr(pairing("check", "1000")),
			why: "growth, reported", unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "inbound policy check (pairingd IsAllowed, bbolt) p99 with 100k approved senders vs 1k",
			subject: pairing("check", "100000"), baseline: ptr(pairing("check", "1000")),
			target: le(2), unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "pairing Approve (bbolt, fsync) p99 with 10k approved senders vs 1k",
			subject: pairing("approve", "10000"), baseline: ptr(pairing("approve", "1000")),
			why: "growth, reported", unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "pairing Approve (bbolt, fsync) p99 with 100k approved senders vs 1k",
			subject: pairing("approve", "100000"), baseline: ptr(pairing("approve", "1000")),
			target: le(2), unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "inbound local message -> policy -> session index -> agent (echo) -> reply, per message (absolute)",
			subject: side{pkg: "gateway/internal/pipeline", bench: "^BenchmarkLocalSend$", metric: "ns/op", time: bt("300ms", "50ms")},
			why:     "reported; the policy-check rows above give its pairingd part at scale", unit: "us", scale: 1e-3},
		{name: "Telegram end to end, 1 sender: update into the fake Bot API -> reply received by it, p99, vs the bare exchange (getUpdates + sendMessage by a minimal client)",
			subject: e2e("senders=1/path=gateway"), baseline: ptr(e2e("senders=1/path=bare")),
			why: "reported", unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "Telegram end to end, 50 concurrent senders, p99, vs the bare exchange",
			subject: e2e("senders=50/path=gateway"), baseline: ptr(e2e("senders=50/path=bare")),
			target: le(2), unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "Telegram end to end, 50 concurrent senders while one other chat runs a 10 s command, p99, vs without it",
			subject: e2e("senders=50/path=gateway-slow-chat"), baseline: ptr(e2e("senders=50/path=gateway")),
			target: le(1.5), unit: "ms", scale: 1, also: []string{"p50-ms"}},
		{name: "config set with 10 encrypted secrets in the file (reference)",
			subject: cs("10"), unit: "ms", scale: ms},
		{name: "config set with 100 secrets vs 10 (growth)",
			subject: cs("100"), baseline: ptr(cs("10")),
			target: le(10), why: "for 10x the secrets", unit: "ms", scale: ms},
		{name: "config set with 1,000 secrets vs 10 (growth)",
			subject: cs("1000"), baseline: ptr(cs("10")),
			target: le(100), why: "for 100x the secrets", unit: "ms", scale: ms},
		{name: "gateway restart (Reload) to the new runtime serving vs a config read (GetConfig), 3 channels configured, in process",
			subject:  side{pkg: "gateway/internal/runtime", bench: "^BenchmarkReload$/^reload$", metric: "ns/op", time: bt("30x", "5x")},
			baseline: &side{pkg: "gateway/internal/runtime", bench: "^BenchmarkReload$/^get-config$", metric: "ns/op", time: bt("100x", "10x")},
			why:      "reported: re-read, validate, build, probe the Bot API, swap", unit: "ms", scale: ms},
		{name: "security migrate of a config with 1,000 secrets, encrypted by secretsd over mTLS gRPC",
			subject: side{pkg: "secretsd/internal/api", bench: "^BenchmarkMigrate1000Secrets$", metric: "ns/op", time: bt("3x", "1x")},
			target:  le(1000), unit: "ms", scale: ms},
		{name: "Control UI page domInteractive vs a static page from the same listener (headless Chromium, median of 10 navigations per process)",
			subject: uiLoad("ui-page"), baseline: ptr(uiLoad("static-page")),
			target: le(3), unit: "ms", scale: 1},
		{name: "Control UI: pairing request visible in the page vs `moltbot pairing watch` printing it, both timed from the send",
			subject: uiPairing("ui"), baseline: ptr(uiPairing("pairing-watch")),
			target: le(2), unit: "ms", scale: 1},
		{name: "Control UI assets in total (the page, its ES modules and CSS, as served)",
			subject: side{pkg: "gateway/internal/webui", bench: "^BenchmarkAssets$", metric: "KB", time: "1x"},
			target:  le(150), why: "the page and everything it loads", unit: "KB", scale: 1},
	}
}

func ptr(s side) *side { return &s }
