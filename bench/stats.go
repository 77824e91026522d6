package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarises a set of durations. Percentiles are nearest-rank over
// every sample (no histogram buckets): P95 is the smallest sample that is
// at least 95 % of the samples. Durations are in milliseconds, rounded to
// the microsecond. The zero value means no samples.
type Latency struct {
	Count int     `json:"count"`
	Mean  float64 `json:"meanMs"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

// Summarize returns the Latency of samples. It sorts samples in place.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return Latency{
		Count: len(samples),
		Mean:  ms(sum / time.Duration(len(samples))),
		P50:   ms(Percentile(samples, 50)),
		P95:   ms(Percentile(samples, 95)),
		P99:   ms(Percentile(samples, 99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order: the sample at rank
// ⌈p/100 × n⌉ (1-based). It returns 0 for no samples; p outside (0, 100]
// is clamped to the smallest or largest sample.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// rate is n per second over d, or 0 when d is not positive.
func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// round returns f rounded to digits decimal places.
func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}
