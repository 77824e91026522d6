package bench

import (
	"slices"
	"testing"
	"time"
)

func TestPercentile_nearestRank(t *testing.T) {
	t.Parallel()
	ten := make([]time.Duration, 10) // 1ms … 10ms
	for i := range ten {
		ten[i] = time.Duration(i+1) * time.Millisecond
	}
	hundred := make([]time.Duration, 100) // 1 … 100
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples", nil, 50, 0},
		{"one sample p50", []time.Duration{7}, 50, 7},
		{"one sample p99", []time.Duration{7}, 99, 7},
		{"two samples p50 is the lower", []time.Duration{1, 2}, 50, 1},
		{"two samples p51 is the upper", []time.Duration{1, 2}, 51, 2},
		{"ten p50", ten, 50, 5 * time.Millisecond},
		{"ten p95 rounds the rank up", ten, 95, 10 * time.Millisecond},
		{"ten p90", ten, 90, 9 * time.Millisecond},
		{"ten p100 is the max", ten, 100, 10 * time.Millisecond},
		{"ten p0 clamps to the min", ten, 0, time.Millisecond},
		{"ten p150 clamps to the max", ten, 150, 10 * time.Millisecond},
		{"hundred p99", hundred, 99, 99},
		{"hundred p99.5", hundred, 99.5, 100},
		{"hundred p1", hundred, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"empty", nil, Latency{}},
		{"one", []time.Duration{1500 * us}, Latency{Count: 1, Mean: 1.5, P50: 1.5, P95: 1.5, P99: 1.5, Max: 1.5}},
		{
			"unsorted input is sorted",
			[]time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond},
			Latency{Count: 4, Mean: 2.5, P50: 2, P95: 4, P99: 4, Max: 4},
		},
		{
			"rounded to the microsecond",
			[]time.Duration{1234567, 1234567}, // 1.234567 ms
			Latency{Count: 2, Mean: 1.235, P50: 1.235, P95: 1.235, P99: 1.235, Max: 1.235},
		},
		{
			"one slow outlier moves only the tail",
			append(slices.Repeat([]time.Duration{10 * time.Millisecond}, 99), time.Second),
			Latency{Count: 100, Mean: 19.9, P50: 10, P95: 10, P99: 10, Max: 1000},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.samples); got != tc.want {
				t.Errorf("Summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    float64
		d    time.Duration
		want float64
	}{
		{2000, 2 * time.Second, 1000},
		{3, 500 * time.Millisecond, 6},
		{5, 0, 0},
		{5, -time.Second, 0},
	} {
		if got := rate(tc.n, tc.d); got != tc.want {
			t.Errorf("rate(%v, %v) = %v, want %v", tc.n, tc.d, got, tc.want)
		}
	}
}
