package main

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestABBA(t *testing.T) {
	var seq []string
	measure := func(s side) (map[string]float64, error) {
		seq = append(seq, s.bench)
		return map[string]float64{"ns/op": 1}, nil
	}
	r := row{name: "x", subject: side{bench: "A", metric: "ns/op"}, baseline: &side{bench: "B", metric: "ns/op"}, scale: 1}
	rr := measureRow(measure, r, 10)
	require.Empty(t, rr.Error)
	require.Equal(t, []string{"A", "B", "B", "A", "A", "B", "B", "A", "A", "B", "B", "A", "A", "B", "B", "A", "A", "B", "B", "A"}, seq)
	require.Equal(t, []string{"AB", "BA", "AB", "BA", "AB", "BA", "AB", "BA", "AB", "BA"}, rr.Order)
	require.Len(t, rr.Subject, 10)
	require.Len(t, rr.Baseline, 10)

	// Without a baseline: the subject alone, every round.
	seq = nil
	rr = measureRow(measure, row{name: "y", subject: side{bench: "A", metric: "ns/op"}, scale: 1}, 10)
	require.Empty(t, rr.Error)
	require.Len(t, seq, 10)
	require.Empty(t, rr.Order)
}

// Each round's ratio pairs that round's subject with that round's
// baseline, whichever ran first.
func TestMeasureRowPairsRounds(t *testing.T) {
	n := map[string]int{}
	measure := func(s side) (map[string]float64, error) {
		n[s.bench]++
		if s.bench == "A" {
			return map[string]float64{"ns/op": float64(n["A"]) * 2, "p50-ms": 7}, nil
		}
		return map[string]float64{"ns/op": float64(n["B"])}, nil
	}
	r := row{name: "x", subject: side{bench: "A", metric: "ns/op"}, baseline: &side{bench: "B", metric: "ns/op"},
		scale: 1, target: &Target{Op: "<=", Bound: 2.5}, also: []string{"p50-ms"}}
	rr := measureRow(measure, r, 10)
	require.Empty(t, rr.Error)
	require.Equal(t, 2.0, rr.Ratio.Median)
	require.Equal(t, 2.0, rr.Ratio.Lo)
	require.Equal(t, 2.0, rr.Ratio.Hi)
	require.Equal(t, Pass, rr.Verdict)
	require.Equal(t, []float64{7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, rr.Also["p50-ms"])
}

func TestMeasureRowErrors(t *testing.T) {
	r := row{name: "x", subject: side{pkg: "p", bench: "A", metric: "p99-ms"}, scale: 1}
	rr := measureRow(func(side) (map[string]float64, error) { return map[string]float64{"ns/op": 1}, nil }, r, 10)
	require.Equal(t, "ERROR", rr.Verdict)
	require.Contains(t, rr.Error, "no p99-ms")
	rr = measureRow(func(side) (map[string]float64, error) { return nil, errors.New("boom") }, r, 10)
	require.Equal(t, "ERROR", rr.Verdict)
	require.Contains(t, rr.Error, "boom")
}

func TestBootstrap(t *testing.T) {
	v := []float64{1.10, 1.42, 0.88, 1.09, 0.95, 1.20, 1.01, 0.99, 1.05, 1.30}
	a, err := bootstrap(v)
	require.NoError(t, err)
	b, _ := bootstrap(v)
	require.Equal(t, a, b, "fixed seed: the same figures give the same interval")
	require.InDelta(t, 1.07, a.Median, 1e-9)
	require.LessOrEqual(t, a.Lo, a.Median)
	require.GreaterOrEqual(t, a.Hi, a.Median)
	require.Greater(t, a.Lo, 0.88, "the interval of a median is inside the data")
	require.Less(t, a.Hi, 1.42)
	require.Greater(t, a.Hi-a.Lo, 0.05, "ten scattered rounds cannot give a point")

	// Constant data: a point.
	c, err := bootstrap([]float64{2, 2, 2, 2, 2, 2, 2, 2, 2, 2})
	require.NoError(t, err)
	require.Equal(t, Interval{2, 2, 2}, c)

	// The median's interval ignores one wild round (a resample's median
	// moves only when 5 of its 10 picks are that round: p ~ 0.002).
	o, err := bootstrap([]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 100})
	require.NoError(t, err)
	require.Equal(t, Interval{1, 1, 1}, o)

	// More rounds of the same spread give a narrower interval.
	var many []float64
	for range 10 {
		many = append(many, v...)
	}
	m, err := bootstrap(many)
	require.NoError(t, err)
	require.Less(t, m.Hi-m.Lo, a.Hi-a.Lo)

	_, err = bootstrap([]float64{1})
	require.ErrorContains(t, err, "at least 2 rounds")
	_, err = bootstrap([]float64{1, math.NaN()})
	require.ErrorContains(t, err, "round 2")
}

func TestVerdict(t *testing.T) {
	le := &Target{Op: "<=", Bound: 1.05}
	ge := &Target{Op: ">=", Bound: 0.9}
	for _, tc := range []struct {
		name string
		t    *Target
		ci   Interval
		want string
	}{
		{"whole interval below a <= bound", le, Interval{1.0, 0.97, 1.04}, Pass},
		{"upper end on the bound", le, Interval{1.0, 0.97, 1.05}, Pass},
		{"straddles a <= bound", le, Interval{1.02, 0.98, 1.09}, Noise},
		{"median passes but the interval straddles", le, Interval{1.0, 0.9, 1.2}, Noise},
		{"whole interval above a <= bound", le, Interval{1.2, 1.1, 1.4}, Miss},
		{"whole interval above a >= bound", ge, Interval{0.95, 0.91, 0.99}, Pass},
		{"straddles a >= bound", ge, Interval{0.92, 0.85, 0.99}, Noise},
		{"whole interval below a >= bound", ge, Interval{0.8, 0.7, 0.85}, Miss},
		{"no target", nil, Interval{5, 1, 9}, None},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, verdict(tc.t, tc.ci)) })
	}
}

func TestRatios(t *testing.T) {
	r, err := ratios([]float64{2, 3}, []float64{1, 6}, false)
	require.NoError(t, err)
	require.Equal(t, []float64{2, 0.5}, r)
	r, err = ratios([]float64{2, 3}, []float64{1, 6}, true) // ops/s: baseline time / subject time
	require.NoError(t, err)
	require.Equal(t, []float64{0.5, 2}, r)
	_, err = ratios([]float64{1}, []float64{1, 2}, false)
	require.ErrorContains(t, err, "1 subject rounds against 2 baseline rounds")
	_, err = ratios([]float64{0}, []float64{1}, false)
	require.ErrorContains(t, err, "non-positive")
}

func TestParseBench(t *testing.T) {
	out := []byte("goos: linux\nBenchmarkX/a=1-2   \t 300\t  2074 ns/op\t 0.0009010 p50-ms\t 0.02478 p99-ms\nPASS\n")
	got, err := parseBench(out, side{bench: "X"})
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"ns/op": 2074, "p50-ms": 0.000901, "p99-ms": 0.02478}, got)
	_, err = parseBench([]byte("PASS\n"), side{bench: "X"})
	require.ErrorContains(t, err, "no benchmark line")
	_, err = parseBench(append(out, out...), side{bench: "X"})
	require.ErrorContains(t, err, "more than one benchmark")
}

func TestRunRefusesOddRounds(t *testing.T) {
	_, err := run(runConfig{rounds: 9})
	require.ErrorContains(t, err, "even number")
}
