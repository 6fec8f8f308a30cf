package selfbench

import (
	"testing"
	"time"
)

// BenchmarkSleep: d=1ms against d=4ms has a time ratio near 0.25.
func BenchmarkSleep(b *testing.B) {
	for _, d := range []time.Duration{time.Millisecond, 4 * time.Millisecond} {
		b.Run("d="+d.String(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				time.Sleep(d)
			}
			b.ReportMetric(float64(d.Milliseconds()), "slept-ms")
		})
	}
}
