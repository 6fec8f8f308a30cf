package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// selfRows time 1 ms sleeps against 4 ms sleeps (ratio near 0.25): one row
// whose target the whole interval clears, one it cannot reach.
func selfRows() []row {
	s := func(d string) side {
		return side{pkg: "services/cmd/benchreport/internal/selfbench", bench: "^BenchmarkSleep$/^d=" + d + "$", metric: "ns/op", time: "3x"}
	}
	return []row{
		{name: "1 ms vs 4 ms, target <= 0.9x", subject: s("1ms"), baseline: ptr(s("4ms")), target: &Target{Op: "<=", Bound: 0.9}, unit: "ms", scale: 1e-6, also: []string{"slept-ms"}},
		{name: "1 ms vs 4 ms, target <= 0.05x", subject: s("1ms"), baseline: ptr(s("4ms")), target: &Target{Op: "<=", Bound: 0.05}, unit: "ms", scale: 1e-6},
	}
}

// TestRunEndToEnd is the quick mode of the framework itself: it compiles a
// real benchmark package, runs 10 ABBA rounds per row in fresh processes,
// appends the raw rounds to the history and generates the report with the
// previous run beside it.
func TestRunEndToEnd(t *testing.T) {
	dir := t.TempDir()
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	hist := filepath.Join(dir, "bench", "history.jsonl")
	out := filepath.Join(dir, "BENCHMARKS.md")
	var log bytes.Buffer
	cfg := runConfig{root: root, rounds: 10, out: out, history: hist, rows: selfRows(), up: "4.20", log: &log}

	first, err := run(cfg)
	require.NoError(t, err, log.String())
	require.Len(t, first.Rows, 2)
	pass, miss := first.Rows[0], first.Rows[1]
	require.Empty(t, pass.Error)
	require.Equal(t, Pass, pass.Verdict, log.String())
	require.Equal(t, Miss, miss.Verdict, log.String())
	require.Len(t, pass.Subject, 10)
	require.Len(t, pass.Baseline, 10)
	require.Equal(t, "AB", pass.Order[0])
	require.Equal(t, "BA", pass.Order[1])
	for _, v := range pass.Baseline {
		require.GreaterOrEqual(t, v, 4e6, "a 4 ms sleep takes at least 4 ms")
	}
	require.Equal(t, []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, pass.Also["slept-ms"])
	require.LessOrEqual(t, pass.Ratio.Lo, pass.Ratio.Median)
	require.LessOrEqual(t, pass.Ratio.Median, pass.Ratio.Hi)
	require.Contains(t, log.String(), "1 ms vs 4 ms, target <= 0.9x")

	second, err := run(cfg)
	require.NoError(t, err)

	// Both runs are in the history, raw rounds included.
	runs, err := readHistory(hist)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, first.Rows[0].Subject, runs[0].Rows[0].Subject)
	require.Equal(t, second.Rows[0].Subject, runs[1].Rows[0].Subject)
	// A history line re-checks: its raw rounds give its interval and verdict.
	again := runs[1].Rows[0]
	require.NoError(t, again.compute())
	require.Equal(t, second.Rows[0].Ratio, again.Ratio)
	require.Equal(t, second.Rows[0].Verdict, again.Verdict)

	// The report is the latest run, with the previous run's figures.
	md, err := os.ReadFile(out)
	require.NoError(t, err)
	text := string(md)
	require.Contains(t, text, "Run of "+second.Time)
	require.Contains(t, text, "ABBA order")
	require.Contains(t, text, "10000 times")
	require.Contains(t, text, "| 1 ms vs 4 ms, target <= 0.05x |")
	require.Contains(t, text, "| MISS |")
	require.Contains(t, text, prevCell(first.Rows[0]))
	require.Contains(t, text, "4.20 s")
	require.Contains(t, text, "Load average")

	// -render regenerates the same report from the history alone.
	rendered := filepath.Join(dir, "rendered.md")
	require.NoError(t, renderFromHistory(hist, rendered))
	r2, err := os.ReadFile(rendered)
	require.NoError(t, err)
	require.Equal(t, text, string(r2))
	require.False(t, strings.Contains(text, "QUICK MODE"))
}

func TestReadHistoryNamesBadLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "h.jsonl")
	require.NoError(t, os.WriteFile(p, []byte("{}\nnot json\n"), 0o644))
	_, err := readHistory(p)
	require.ErrorContains(t, err, "h.jsonl line 2")
}
