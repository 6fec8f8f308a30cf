package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// The statistics every row goes through. They are documented in the
// generated BENCHMARKS.md header (methodText), so a reader can redo them
// from bench/history.jsonl.

// Resamples and seed of the bootstrap: fixed, so the same per-round figures
// always give the same interval.
const (
	Resamples     = 10000
	bootstrapSeed = 0x6d6f6c74626f74 // "moltbot"
	// Confidence of the interval: the 2.5th and 97.5th percentiles.
	ciLow, ciHigh = 0.025, 0.975
)

// abba says, per round, whether the subject runs first. Rounds go in pairs
// A B | B A, so a drift over the run (a warming cache, a neighbour's load
// ramping up) hits subject and baseline alike.
func abba(rounds int) []bool {
	out := make([]bool, rounds)
	for i := range out {
		out[i] = i%2 == 0
	}
	return out
}

// median of v (v is not modified); NaN for an empty slice.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted s by the nearest-rank-below rule on (n-1)*p.
func percentile(sorted []float64, p float64) float64 {
	return sorted[int(math.Floor(float64(len(sorted)-1)*p))]
}

// Interval is a median with its 95 % bootstrap interval.
type Interval struct {
	Median float64 `json:"median"`
	Lo     float64 `json:"lo"`
	Hi     float64 `json:"hi"`
}

// bootstrap resamples v with replacement Resamples times (fixed seed), takes
// each resample's median, and returns the median of v with the 2.5th and
// 97.5th percentiles of those medians.
func bootstrap(v []float64) (Interval, error) {
	if len(v) < 2 {
		return Interval{}, fmt.Errorf("bootstrap needs at least 2 rounds, got %d", len(v))
	}
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Interval{}, fmt.Errorf("round %d: figure %v is not a number", i+1, x)
		}
	}
	r := rand.New(rand.NewPCG(bootstrapSeed, uint64(len(v))))
	meds := make([]float64, Resamples)
	buf := make([]float64, len(v))
	for i := range meds {
		for j := range buf {
			buf[j] = v[r.IntN(len(v))]
		}
		meds[i] = median(buf)
	}
	slices.Sort(meds)
	return Interval{Median: median(v), Lo: percentile(meds, ciLow), Hi: percentile(meds, ciHigh)}, nil
}

// Target is a bound the row's value (a ratio, or the figure when the row
// has no baseline) must stay on the right side of.
type Target struct {
	Op    string  `json:"op"` // "<=" or ">="
	Bound float64 `json:"bound"`
}

func (t Target) String() string { return fmt.Sprintf("%s %g", t.Op, t.Bound) }

// Verdicts.
const (
	Pass  = "pass"  // the whole interval clears the target
	Noise = "noise" // the interval straddles the target: this run cannot tell
	Miss  = "MISS"  // the whole interval is on the wrong side
	None  = "-"     // no target: the figure is reported
)

// verdict: a row passes only when its WHOLE interval clears the target.
func verdict(t *Target, ci Interval) string {
	if t == nil {
		return None
	}
	ok := func(x float64) bool {
		if t.Op == ">=" {
			return x >= t.Bound
		}
		return x <= t.Bound
	}
	switch lo, hi := ok(ci.Lo), ok(ci.Hi); {
	case lo && hi:
		return Pass
	case !lo && !hi:
		return Miss
	default:
		return Noise
	}
}

// ratios pairs round i of subject with round i of baseline. Throughput rows
// give ops/s over ops/s (baseline time over subject time); time rows
// subject time over baseline time.
func ratios(subject, baseline []float64, throughput bool) ([]float64, error) {
	if len(subject) != len(baseline) {
		return nil, fmt.Errorf("%d subject rounds against %d baseline rounds", len(subject), len(baseline))
	}
	out := make([]float64, len(subject))
	for i := range subject {
		s, b := subject[i], baseline[i]
		if s <= 0 || b <= 0 {
			return nil, fmt.Errorf("round %d: non-positive figure (subject %v, baseline %v)", i+1, s, b)
		}
		out[i] = s / b
		if throughput {
			out[i] = b / s
		}
	}
	return out, nil
}
