// Command benchreport runs the project's benchmarks pairwise against their
// baselines, interleaving the two sides round by round so machine noise
// hits both alike, and writes BENCHMARKS.md: figure, baseline, ratio,
// target and the spread over rounds. `make bench` runs it.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// side is one benchmark measurement: a compiled test binary and a -test.bench pattern.
type side struct {
	pkg    string // module-relative dir, e.g. "services/server"
	bench  string // -test.bench pattern
	metric string // "ns/op" or a custom unit such as "p99-ms"
	time   string // -test.benchtime
	env    []string
}

// row is one line of BENCHMARKS.md.
type row struct {
	name     string
	subject  side
	baseline *side
	// higherBetter: the ratio is baseline/subject of ns/op (ops/s ratio).
	throughput bool
	target     string
	check      func(fig, base, ratio float64) bool
	unit       string // display unit of the figure
	scale      float64
}

func rows(quick bool) []row {
	bt := func(long, short string) string {
		if quick {
			return short
		}
		return long
	}
	sb := func(bench, metric string) side {
		return side{pkg: "sandboxd/internal/sandbox", bench: bench, metric: metric, time: bt("20x", "5x")}
	}
	ms := 1e-6
	cs := func(n string) side {
		return side{pkg: "gateway/internal/configstore", bench: "^BenchmarkSet$/^secrets=" + n + "$", metric: "ns/op", time: bt("20x", "5x")}
	}
	return []row{
		{name: "gRPC unary, full interceptor chain vs bare mTLS echo (16 callers)", throughput: true,
			subject:  side{pkg: "services/server", bench: "^BenchmarkChain$/^chain$", metric: "ns/op", time: bt("2s", "1s")},
			baseline: &side{pkg: "services/server", bench: "^BenchmarkChain$/^bare$", metric: "ns/op", time: bt("2s", "1s")},
			target:   ">= 0.90x ops/s (<= 10 % cost)", check: func(_, _, r float64) bool { return r >= 0.90 }, unit: "us/call", scale: 1e-3},
		{name: "secretsd Encrypt+Decrypt pair vs two bare echo calls (1 caller)", throughput: true,
			subject:  side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=1$/^secretsd$", metric: "ns/op", time: bt("2s", "1s")},
			baseline: &side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=1$/^echo$", metric: "ns/op", time: bt("2s", "1s")},
			target:   ">= 0.8x ops/s", check: func(_, _, r float64) bool { return r >= 0.8 }, unit: "us/pair", scale: 1e-3},
		{name: "secretsd Encrypt+Decrypt pair vs two bare echo calls (16 callers)", throughput: true,
			subject:  side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=16$/^secretsd$", metric: "ns/op", time: bt("2s", "1s")},
			baseline: &side{pkg: "secretsd/internal/api", bench: "^BenchmarkEncryptDecrypt$/^callers=16$/^echo$", metric: "ns/op", time: bt("2s", "1s")},
			target:   ">= 0.8x ops/s", check: func(_, _, r float64) bool { return r >= 0.8 }, unit: "us/pair", scale: 1e-3},
		{name: "AES-256-GCM seal+open of 64 B in process (reference)",
			subject: side{pkg: "secretsd/internal/keyring", bench: "^BenchmarkAESGCM$", metric: "ns/op", time: bt("1s", "300ms")},
			target:  "reference", unit: "us", scale: 1e-3},
		{name: "keyring seal+open with the JSON envelope, in process (reference)",
			subject: side{pkg: "secretsd/internal/keyring", bench: "^BenchmarkSealOpen$", metric: "ns/op", time: bt("1s", "300ms")},
			target:  "reference", unit: "us", scale: 1e-3},
		{name: "sandbox warm exec via in-sandbox agent vs `docker exec` CLI",
			subject:  sb("^BenchmarkWarmExec$/^path=agent$", "ns/op"),
			baseline: ptr(sb("^BenchmarkWarmExec$/^path=docker-exec-cli$", "ns/op")),
			target:   "<= 0.05x wall time", check: func(_, _, r float64) bool { return r <= 0.05 }, unit: "ms", scale: ms},
		{name: "sandbox Docker-exec fallback (API) vs `docker exec` CLI",
			subject:  sb("^BenchmarkWarmExec$/^path=docker-exec-api$", "ns/op"),
			baseline: ptr(sb("^BenchmarkWarmExec$/^path=docker-exec-cli$", "ns/op")),
			target:   "<= 0.8x", check: func(_, _, r float64) bool { return r <= 0.8 }, unit: "ms", scale: ms},
		{name: "sandbox cold Ensure + first command vs hardened `docker run --rm` CLI",
			subject:  sb("^BenchmarkCold$/^path=ensure$", "ns/op"),
			baseline: ptr(sb("^BenchmarkCold$/^path=docker-run-cli$", "ns/op")),
			target:   "<= 1.0x", check: func(_, _, r float64) bool { return r <= 1.0 }, unit: "ms", scale: ms},
		{name: "new session's first command with the warm pool vs cold `docker run --rm`",
			subject:  sb("^BenchmarkCold$/^path=pool-first-command$", "ns/op"),
			baseline: ptr(sb("^BenchmarkCold$/^path=docker-run-cli$", "ns/op")),
			target:   "<= 0.2x", check: func(_, _, r float64) bool { return r <= 0.2 }, unit: "ms", scale: ms},
		{name: "new session's first command with a fresh workspace (warm pool pair) vs a warm session's command",
			subject:  sb("^BenchmarkWorkspaceFirstCommand$/^path=new-session-fresh-workspace$", "ns/op"),
			baseline: ptr(sb("^BenchmarkWorkspaceFirstCommand$/^path=warm-session$", "ns/op")),
			target:   "<= 1.5x", check: func(_, _, r float64) bool { return r <= 1.5 }, unit: "ms", scale: ms},
		{name: "20 sessions each running a command at once (warm), p99",
			subject: side{pkg: "sandboxd/internal/sandbox", bench: "^BenchmarkConcurrentSessions$/^sessions=20$/^state=warm$", metric: "p99-ms", time: bt("5x", "2x")},
			target:  "all succeed; p99 reported", unit: "ms", scale: 1},
		{name: "pairing Approve p99 with 10,000 pending codes (bbolt, fsync)",
			subject: side{pkg: "pairingd/internal/pairing", bench: "^BenchmarkApprove$", metric: "p99-ms", time: bt("3000x", "1000x")},
			target:  "p99 < 5 ms", check: func(f, _, _ float64) bool { return f < 5 }, unit: "ms", scale: 1},
		{name: "inbound local message -> policy -> reply vs a direct call (per message)",
			subject:  side{pkg: "gateway/internal/policy", bench: "^BenchmarkPipeline$/^inject-policy-reply$", metric: "ns/op", time: bt("1s", "300ms")},
			baseline: &side{pkg: "gateway/internal/policy", bench: "^BenchmarkPipeline$/^direct$", metric: "ns/op", time: bt("1s", "300ms")},
			target:   "overhead reported", unit: "us", scale: 1e-3},
		// config set latency as the number of secrets in the file grows
		// (each write re-checks every envelope): 100 and 1,000 against 10.
		{name: "config set with 10 encrypted secrets in the file (reference)",
			subject: cs("10"), target: "reference", unit: "ms", scale: ms},
		{name: "config set with 100 secrets vs 10 (growth)",
			subject: cs("100"), baseline: ptr(cs("10")),
			target: "growth reported (<= 10x for 10x the secrets)", check: func(_, _, r float64) bool { return r <= 10 }, unit: "ms", scale: ms},
		{name: "config set with 1,000 secrets vs 10 (growth)",
			subject: cs("1000"), baseline: ptr(cs("10")),
			target: "< 1 s; growth reported (<= 100x for 100x the secrets)", check: func(f, _, r float64) bool { return f < 1000 && r <= 100 }, unit: "ms", scale: ms},
		{name: "gateway restart (Reload) to the new runtime serving vs a config read (GetConfig), 3 channels configured, in process",
			subject:  side{pkg: "gateway/internal/runtime", bench: "^BenchmarkReload$/^reload$", metric: "ns/op", time: bt("50x", "20x")},
			baseline: &side{pkg: "gateway/internal/runtime", bench: "^BenchmarkReload$/^get-config$", metric: "ns/op", time: bt("200x", "50x")},
			target:   "ratio reported (re-read, validate, build, probe the Bot API, swap)", unit: "ms", scale: ms},
		{name: "security migrate of a config with 1,000 secrets",
			subject: side{pkg: "secretsd/internal/keyring", bench: "^BenchmarkMigrate1000Secrets$", metric: "ns/op", time: bt("5x", "2x")},
			target:  "< 1 s", check: func(f, _, _ float64) bool { return f < 1000 }, unit: "ms", scale: ms},
	}
}

func ptr(s side) *side { return &s }

func main() {
	root := flag.String("root", ".", "repo root")
	rounds := flag.Int("rounds", 5, "interleaved rounds per row")
	out := flag.String("out", "BENCHMARKS.md", "report file")
	quick := flag.Bool("quick", false, "shorter benchtimes")
	only := flag.String("only", "", "run only rows whose name contains this")
	upSeconds := flag.String("make-up", "", "measured `make up` to-healthy seconds (from the Makefile), added as a row")
	flag.Parse()
	if err := run(*root, *rounds, *out, *quick, *only, *upSeconds); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

type result struct {
	row              row
	fig, base, ratio float64
	spreadF, spreadB float64
	err              error
}

func run(root string, rounds int, out string, quick bool, only, up string) error {
	bins := map[string]string{}
	tmp, err := os.MkdirTemp("", "benchreport")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var results []result
	for _, r := range rows(quick) {
		if only != "" && !strings.Contains(r.name, only) {
			continue
		}
		res := result{row: r}
		var fs, bs []float64
		for i := 0; i < rounds && res.err == nil; i++ {
			f, err := measure(root, tmp, bins, r.subject)
			if err != nil {
				res.err = err
				break
			}
			fs = append(fs, f)
			if r.baseline != nil {
				b, err := measure(root, tmp, bins, *r.baseline)
				if err != nil {
					res.err = err
					break
				}
				bs = append(bs, b)
			}
		}
		if res.err == nil {
			res.fig, res.spreadF = median(fs), spread(fs)
			if len(bs) > 0 {
				res.base, res.spreadB = median(bs), spread(bs)
				res.ratio = res.fig / res.base
				if r.throughput {
					res.ratio = res.base / res.fig
				}
			}
		}
		printRow(os.Stdout, res)
		results = append(results, res)
	}
	return write(filepath.Join(root, out), results, rounds, up)
}

var benchLine = regexp.MustCompile(`^Benchmark\S+\s+\d+\s+(.*)$`)

// measure runs one side once and returns its metric.
func measure(root, tmp string, bins map[string]string, s side) (float64, error) {
	bin, ok := bins[s.pkg]
	if !ok {
		mod, rel, _ := strings.Cut(s.pkg, "/")
		bin = filepath.Join(tmp, strings.ReplaceAll(s.pkg, "/", "_")+".test")
		// The integration tag: sandboxd's benchmarks use the real engine
		// and live with its integration tests.
		cmd := exec.Command("go", "test", "-tags", "integration", "-c", "-o", bin, "./"+rel)
		cmd.Dir = filepath.Join(root, mod)
		if outb, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build %s: %v\n%s", s.pkg, err, outb)
		}
		bins[s.pkg] = bin
	}
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", s.bench, "-test.benchtime", s.time, "-test.count", "1")
	cmd.Dir = filepath.Join(root, s.pkg)
	cmd.Env = append(os.Environ(), s.env...)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %v\n%s", s.pkg, s.bench, err, tailLines(outb, 15))
	}
	sc := bufio.NewScanner(bytes.NewReader(outb))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[1])
		for i := 1; i < len(f); i++ {
			if f[i] == s.metric {
				return strconv.ParseFloat(f[i-1], 64)
			}
		}
	}
	return 0, fmt.Errorf("%s %s: no %s in output:\n%s", s.pkg, s.bench, s.metric, tailLines(outb, 15))
}

func tailLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is (max-min)/median: how much the rounds disagree.
func spread(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := median(s)
	if m == 0 {
		return 0
	}
	return (s[len(s)-1] - s[0]) / m
}

func verdict(r result) string {
	switch {
	case r.err != nil:
		return "ERROR"
	case r.row.check == nil:
		return "-"
	case r.row.check(r.fig*r.row.scale, r.base*r.row.scale, r.ratio):
		return "pass"
	default:
		return "MISS"
	}
}

func fmtFig(v, scale float64, unit string) string {
	return fmt.Sprintf("%.3g %s", v*scale, unit)
}

func printRow(w *os.File, r result) {
	if r.err != nil {
		fmt.Fprintf(w, "%-80s ERROR %v\n", r.row.name, r.err)
		return
	}
	fmt.Fprintf(w, "%-80s %12s", r.row.name, fmtFig(r.fig, r.row.scale, r.row.unit))
	if r.row.baseline != nil {
		fmt.Fprintf(w, "  baseline %12s  ratio %.3f", fmtFig(r.base, r.row.scale, r.row.unit), r.ratio)
	}
	fmt.Fprintf(w, "  [%s] %s\n", r.row.target, verdict(r))
}

// previous reads the last report's figure and ratio per path, so each run
// shows how far it moved from the one before (the reproducibility check).
func previous(path string) map[string][2]string {
	out := map[string][2]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 6 || !strings.HasPrefix(l, "| ") {
			continue
		}
		out[strings.TrimSpace(cells[1])] = [2]string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[4])}
	}
	return out
}

func write(path string, results []result, rounds int, up string) error {
	prev := previous(path)
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (services/cmd/benchreport) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Each row runs its subject and its baseline alternately, %d rounds, in the same run on the same machine; figures are medians, the spread is (max-min)/median over the rounds. Throughput rows give the ratio as subject ops/s over baseline ops/s; time rows as subject time over baseline time.\n\n", rounds)
	b.WriteString("| path | figure | baseline | ratio | target | result | spread (subject / baseline) | previous run (figure, ratio) |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(&b, "| %s | error | | | %s | ERROR | %s | |\n", r.row.name, r.row.target, strings.ReplaceAll(firstLine(r.err.Error()), "|", "/"))
			continue
		}
		base, ratio, sp := "-", "-", fmt.Sprintf("%.0f %%", r.spreadF*100)
		if r.row.baseline != nil {
			base = fmtFig(r.base, r.row.scale, r.row.unit)
			ratio = fmt.Sprintf("%.3fx", r.ratio)
			sp += fmt.Sprintf(" / %.0f %%", r.spreadB*100)
		}
		p := prev[r.row.name]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.row.name, fmtFig(r.fig, r.row.scale, r.row.unit), base, ratio, r.row.target, verdict(r), sp, strings.Trim(p[0]+", "+p[1], ", "))
	}
	if up != "" {
		p := prev["full stack `make up` to all healthy (images built)"]
		fmt.Fprintf(&b, "| full stack `make up` to all healthy (images built) | %s s | - | - | < 5 s | %s | single run | %s |\n", up, upVerdict(up), p[0])
	}
	fmt.Fprintf(&b, "\nMachine: %s, %d CPUs, %s, %s.\n", cpuModel(), runtime.NumCPU(), runtime.Version(), dockerVersion())
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func upVerdict(s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "-"
	}
	if v < 5 {
		return "pass"
	}
	return "MISS"
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func dockerVersion() string {
	out, err := exec.Command("docker", "version", "--format", "Docker engine {{.Server.Version}}").Output()
	if err != nil {
		return "Docker unreachable"
	}
	return strings.TrimSpace(string(out))
}
