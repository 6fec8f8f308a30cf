package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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
}

// row is one line of BENCHMARKS.md.
type row struct {
	name     string
	subject  side
	baseline *side
	// throughput: the ratio is ops/s over ops/s (baseline time / subject time).
	throughput bool
	// target bounds the value: the ratio when there is a baseline, else the
	// figure in the display unit. nil: reported only.
	target *Target
	why    string // what the target or the row means, shown beside it
	unit   string // display unit of the figure
	scale  float64
	also   []string // further metrics of the subject shown with the figure (e.g. p50-ms)
}

type runConfig struct {
	root, out, history string
	rounds             int
	quick              bool
	up                 string
	rows               []row
	log                io.Writer
}

// Run is one line of bench/history.jsonl: everything a run measured.
type Run struct {
	Time      string      `json:"time"`
	Machine   string      `json:"machine"`
	LoadStart string      `json:"loadavg_start"`
	LoadEnd   string      `json:"loadavg_end"`
	Rounds    int         `json:"rounds"`
	Quick     bool        `json:"quick,omitempty"`
	Resamples int         `json:"resamples"`
	MakeUp    string      `json:"make_up_seconds,omitempty"`
	Rows      []RowResult `json:"rows"`
}

// RowResult is one row of a run, raw per-round figures included (in the
// benchmark's own metric, before display scaling).
type RowResult struct {
	Name       string               `json:"name"`
	Metric     string               `json:"metric"`
	Unit       string               `json:"unit"`
	Scale      float64              `json:"scale"`
	Throughput bool                 `json:"throughput,omitempty"`
	Target     *Target              `json:"target,omitempty"`
	Why        string               `json:"why,omitempty"`
	Order      []string             `json:"order,omitempty"` // per round: "AB" subject first, "BA" baseline first
	Subject    []float64            `json:"subject"`
	Baseline   []float64            `json:"baseline,omitempty"`
	Also       map[string][]float64 `json:"also,omitempty"`
	Figure     Interval             `json:"figure"` // display unit
	Base       *Interval            `json:"base,omitempty"`
	Ratio      *Interval            `json:"ratio,omitempty"`
	Verdict    string               `json:"verdict"`
	Error      string               `json:"error,omitempty"`
}

// value is what the target is checked against: the ratio, or the figure.
func (r RowResult) value() Interval {
	if r.Ratio != nil {
		return *r.Ratio
	}
	return r.Figure
}

func run(cfg runConfig) (Run, error) {
	if cfg.rounds < 2 || cfg.rounds%2 != 0 {
		return Run{}, fmt.Errorf("-rounds %d: need an even number >= 2 (ABBA pairs; >= 10 for a committed run)", cfg.rounds)
	}
	if cfg.log == nil {
		cfg.log = io.Discard
	}
	tmp, err := os.MkdirTemp("", "benchreport")
	if err != nil {
		return Run{}, err
	}
	defer os.RemoveAll(tmp)
	m := &measurer{root: cfg.root, tmp: tmp, bins: map[string]string{}}
	res := Run{
		Time: time.Now().UTC().Format(time.RFC3339), Machine: machine(), LoadStart: loadavg(),
		Rounds: cfg.rounds, Quick: cfg.quick, Resamples: Resamples, MakeUp: cfg.up,
	}
	for _, r := range cfg.rows {
		rr := measureRow(m.measure, r, cfg.rounds)
		printRow(cfg.log, rr)
		res.Rows = append(res.Rows, rr)
	}
	res.LoadEnd = loadavg()
	prev, _ := lastRun(cfg.history)
	if err := appendHistory(cfg.history, res); err != nil {
		return res, err
	}
	return res, writeReport(cfg.out, res, prev)
}

// measureRow runs r's rounds in ABBA order and computes its intervals and verdict.
func measureRow(measure func(side) (map[string]float64, error), r row, rounds int) RowResult {
	rr := RowResult{Name: r.name, Metric: r.subject.metric, Unit: r.unit, Scale: r.scale, Throughput: r.throughput, Target: r.target, Why: r.why}
	fail := func(err error) RowResult {
		rr.Error, rr.Verdict = err.Error(), "ERROR"
		return rr
	}
	for _, subjectFirst := range abba(rounds) {
		order := []bool{true, false}
		if r.baseline == nil {
			order = []bool{true}
		} else if !subjectFirst {
			order = []bool{false, true}
		}
		if r.baseline != nil {
			rr.Order = append(rr.Order, map[bool]string{true: "AB", false: "BA"}[subjectFirst])
		}
		for _, isSubject := range order {
			s := r.subject
			if !isSubject {
				s = *r.baseline
			}
			got, err := measure(s)
			if err != nil {
				return fail(err)
			}
			v, ok := got[s.metric]
			if !ok {
				return fail(fmt.Errorf("%s %s: no %s in the output", s.pkg, s.bench, s.metric))
			}
			if !isSubject {
				rr.Baseline = append(rr.Baseline, v)
				continue
			}
			rr.Subject = append(rr.Subject, v)
			for _, a := range r.also {
				if rr.Also == nil {
					rr.Also = map[string][]float64{}
				}
				rr.Also[a] = append(rr.Also[a], got[a])
			}
		}
	}
	if err := rr.compute(); err != nil {
		return fail(err)
	}
	return rr
}

// compute derives the intervals and the verdict from the raw rounds (also
// used to re-check a history line).
func (rr *RowResult) compute() error {
	fig, err := bootstrap(scaled(rr.Subject, rr.Scale))
	if err != nil {
		return err
	}
	rr.Figure = fig
	if len(rr.Baseline) > 0 {
		b, err := bootstrap(scaled(rr.Baseline, rr.Scale))
		if err != nil {
			return err
		}
		rs, err := ratios(rr.Subject, rr.Baseline, rr.Throughput)
		if err != nil {
			return err
		}
		ratio, err := bootstrap(rs)
		if err != nil {
			return err
		}
		rr.Base, rr.Ratio = &b, &ratio
	}
	rr.Verdict = verdict(rr.Target, rr.value())
	return nil
}

func scaled(v []float64, s float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * s
	}
	return out
}

type measurer struct {
	root, tmp string
	bins      map[string]string
}

var benchLine = regexp.MustCompile(`^Benchmark\S+\s+\d+\s+(.*)$`)

// measure runs one side once (a fresh process) and returns every metric of
// its benchmark line.
func (m *measurer) measure(s side) (map[string]float64, error) {
	bin, ok := m.bins[s.pkg]
	if !ok {
		mod, rel, _ := strings.Cut(s.pkg, "/")
		bin = filepath.Join(m.tmp, strings.ReplaceAll(s.pkg, "/", "_")+".test")
		// The integration tag: sandboxd's benchmarks use the real engine
		// and live with its integration tests.
		cmd := exec.Command("go", "test", "-tags", "integration", "-c", "-o", bin, "./"+rel)
		cmd.Dir = filepath.Join(m.root, mod)
		if outb, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", s.pkg, err, outb)
		}
		m.bins[s.pkg] = bin
	}
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", s.bench, "-test.benchtime", s.time, "-test.count", "1", "-test.timeout", "10m")
	cmd.Dir = filepath.Join(m.root, s.pkg)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", s.pkg, s.bench, err, tailLines(outb, 15))
	}
	return parseBench(outb, s)
}

// parseBench reads the one benchmark line of a run; a pattern matching
// several benchmarks is a row definition error.
func parseBench(out []byte, s side) (map[string]float64, error) {
	var got map[string]float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		mm := benchLine.FindStringSubmatch(sc.Text())
		if mm == nil {
			continue
		}
		if got != nil {
			return nil, fmt.Errorf("%s %s: the pattern matches more than one benchmark", s.pkg, s.bench)
		}
		got = map[string]float64{}
		f := strings.Fields(mm[1])
		for i := 1; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i-1], 64)
			if err != nil {
				return nil, fmt.Errorf("%s %s: metric %s: %v", s.pkg, s.bench, f[i], err)
			}
			got[f[i]] = v
		}
	}
	if got == nil {
		return nil, fmt.Errorf("%s %s: no benchmark line in the output:\n%s", s.pkg, s.bench, tailLines(out, 15))
	}
	return got, nil
}

func tailLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func appendHistory(path string, r Run) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("append %s: %w", path, err)
	}
	return f.Close()
}

// lastRuns returns the history's runs, oldest first.
func readHistory(path string) ([]Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Run
	for i, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var r Run
		if err := json.Unmarshal(l, &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func lastRun(path string) (*Run, error) {
	runs, err := readHistory(path)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[len(runs)-1], nil
}

// renderFromHistory regenerates the report from the history's last run
// (and the one before it), measuring nothing.
func renderFromHistory(hist, out string) error {
	runs, err := readHistory(hist)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return errors.New(hist + ": no runs")
	}
	var prev *Run
	if len(runs) > 1 {
		prev = &runs[len(runs)-2]
	}
	return writeReport(out, runs[len(runs)-1], prev)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	return fmt.Sprintf("%s, %d CPUs, %s, %s", cpuModel(), runtime.NumCPU(), runtime.Version(), dockerVersion())
}

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

func fmtNum(v float64) string {
	if math.IsNaN(v) {
		return "?"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
