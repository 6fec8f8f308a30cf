// Command benchreport runs the project's benchmarks against their baselines
// and writes BENCHMARKS.md. Each row runs >= 10 rounds, subject and baseline
// alternating in ABBA order; its value is the median of the per-round
// ratios with a 95 % bootstrap interval, and it passes only when the whole
// interval clears its target (stats.go). Every run's raw per-round figures
// are appended to bench/history.jsonl, and BENCHMARKS.md is generated from
// the latest run, with the previous run's figures beside it. `make bench`
// runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	root := flag.String("root", ".", "repo root")
	rounds := flag.Int("rounds", 10, "rounds per row (even, >= 10 for a committed run), ABBA order")
	out := flag.String("out", "BENCHMARKS.md", "report file, relative to -root")
	hist := flag.String("history", "bench/history.jsonl", "history file the run is appended to, relative to -root")
	quick := flag.Bool("quick", false, "shorter benchtimes (a smoke run; its report says so)")
	only := flag.String("only", "", "run only rows whose name contains this")
	render := flag.Bool("render", false, "run nothing: regenerate the report from the history's last run")
	upSeconds := flag.String("make-up", "", "measured `make up` to-healthy seconds, reported as a single-run row")
	flag.Parse()
	cfg := runConfig{
		root: *root, rounds: *rounds, out: underRoot(*root, *out), history: underRoot(*root, *hist),
		quick: *quick, up: *upSeconds, log: os.Stdout,
	}
	var err error
	if *render {
		err = renderFromHistory(cfg.history, cfg.out)
	} else {
		for _, r := range rows(*quick) {
			if *only == "" || strings.Contains(r.name, *only) {
				cfg.rows = append(cfg.rows, r)
			}
		}
		_, err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// underRoot resolves a relative path against the repo root; an absolute one
// stays as given.
func underRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}
