package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one Run: the figures of the measured phase
// (warm-up excluded) unless a field says otherwise. It is encoded as one
// JSON object; a null process figure means n/a.
type Report struct {
	StartedAt time.Time `json:"startedAt"`
	Workload  Workload  `json:"workload"`

	// Completed is the number of measured orders that completed and read
	// back as completed; Failed the others (see Errors for why);
	// NotStarted those an aborted run did not get to.
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
	NotStarted int `json:"notStarted,omitempty"`
	// Seconds is the measured phase's wall time, from its first create to
	// its last status read.
	Seconds         float64 `json:"seconds"`
	OrdersPerSecond float64 `json:"ordersPerSecond"`

	// CreateLatency is from sending the create (or, with Rate, from its
	// scheduled time) to its 202; EndToEndLatency from the same start to
	// the callback answer that reported the order completed; ReadLatency
	// is the status read (GET) after completion.
	CreateLatency   Latency `json:"createLatency"`
	EndToEndLatency Latency `json:"endToEndLatency"`
	ReadLatency     Latency `json:"readLatency"`

	// Errors counts the measured phase's errors by kind (see README);
	// WarmupErrors those of the warm-up.
	Errors       map[string]uint64 `json:"errors"`
	WarmupErrors map[string]uint64 `json:"warmupErrors,omitempty"`

	// ExchangesPerOrder is the HTTP exchanges seen (creates, callouts,
	// callbacks, reads, retries included) per completed order; 8 with the
	// default three jobs and no retries.
	ExchangesPerOrder float64 `json:"exchangesPerOrder"`

	// Orchestrator is the orchestrator process: nil (n/a) with Target
	// and no PID. RedisServer is the redis-server the bench started, if
	// any. Bench is the bench process itself (load generator and mocks).
	Orchestrator *Process `json:"orchestrator"`
	RedisServer  *Process `json:"redisServer,omitempty"`
	Bench        *Process `json:"bench"`
	// OrchestratorLog summarises the warnings and errors the orchestrator
	// the bench started logged during the whole run.
	OrchestratorLog *LogSummary `json:"orchestratorLog,omitempty"`
	// Mocks are the mock job services' counters over the whole run.
	Mocks MockStats `json:"mocks"`

	// Ceiling is set when Config.Ceiling asked for it.
	Ceiling *Ceiling `json:"ceiling,omitempty"`

	Host Host `json:"host"`
	// Aborted says why the run stopped early, if it did.
	Aborted string `json:"aborted,omitempty"`
}

// Workload is what was run.
type Workload struct {
	// Target is the orchestrator's URL, or "child" when the bench started
	// it.
	Target string `json:"target"`
	// Store is the orchestrator's store when the bench started it.
	Store       string `json:"store,omitempty"`
	Orders      int    `json:"orders"`
	Warmup      int    `json:"warmup"`
	Concurrency int    `json:"concurrency"`
	// Rate is the open loop's orders/s; 0 is a closed loop.
	Rate            float64 `json:"rate"`
	CallbackDelayMs float64 `json:"callbackDelayMs"`
}

// Process is the cost of one process over the measured phase.
type Process struct {
	PID int `json:"pid"`
	// CPUSeconds is user+system CPU time over the measured phase.
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUSecondsPerOrder is CPUSeconds per completed order.
	CPUSecondsPerOrder float64 `json:"cpuSecondsPerOrder"`
	// Cores is CPUSeconds per second of the phase: 1 is one core busy.
	Cores float64 `json:"cores"`
	// PeakRSSBytes is the peak resident set size (VmHWM) over the
	// process's life, warm-up included.
	PeakRSSBytes uint64 `json:"peakRssBytes"`
	// Error says why a figure could not be read.
	Error string `json:"error,omitempty"`
}

// MockStats are the mock job services' counters (see mocks.Stats).
type MockStats struct {
	CalloutsAccepted uint64 `json:"calloutsAccepted"`
	CalloutsRejected uint64 `json:"calloutsRejected"`
	CalloutsInvalid  uint64 `json:"calloutsInvalid"`
	CallbacksSent    uint64 `json:"callbacksSent"`
	CallbacksRetried uint64 `json:"callbacksRetried"`
	CallbacksFailed  uint64 `json:"callbacksFailed"`
}

// Host describes the machine and the bench's build.
type Host struct {
	NumCPU    int    `json:"numCpu"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"goVersion"`
}

// WriteTable writes r as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	wl := r.Workload
	where := "store " + wl.Store
	if wl.Target != "child" {
		where = "target " + wl.Target
	}
	loop := fmt.Sprintf("closed loop, %d in flight", wl.Concurrency)
	if wl.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g orders/s, at most %d in flight", wl.Rate, wl.Concurrency)
	}
	fmt.Fprintf(&b, "fanflow bench: %s, %d orders after %d warm-up, %s, callback delay %v\n",
		where, wl.Orders, wl.Warmup, loop, time.Duration(wl.CallbackDelayMs*float64(time.Millisecond)))
	if r.Aborted != "" {
		fmt.Fprintf(&b, "ABORTED: %s\n", r.Aborted)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tp50\tp95\tp99\tmax\tmean\t")
	for _, l := range []struct {
		name string
		l    Latency
	}{{"create", r.CreateLatency}, {"end-to-end", r.EndToEndLatency}, {"status read", r.ReadLatency}} {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", l.name, l.l.P50, l.l.P95, l.l.P99, l.l.Max, l.l.Mean)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	notStarted := ""
	if r.NotStarted > 0 {
		notStarted = fmt.Sprintf(", %d not started", r.NotStarted)
	}
	fmt.Fprintf(tw, "throughput\t%.1f orders/s (%d completed, %d failed%s, in %.2f s)\n",
		r.OrdersPerSecond, r.Completed, r.Failed, notStarted, r.Seconds)
	fmt.Fprintf(tw, "errors\t%s\n", formatCounts(r.Errors))
	if len(r.WarmupErrors) > 0 {
		fmt.Fprintf(tw, "warm-up errors\t%s\n", formatCounts(r.WarmupErrors))
	}
	fmt.Fprintf(tw, "HTTP exchanges\t%.2f per order\n", r.ExchangesPerOrder)
	fmt.Fprintf(tw, "orchestrator\t%s\n", r.Orchestrator.format("n/a (give --pid)"))
	if r.RedisServer != nil {
		fmt.Fprintf(tw, "redis-server\t%s\n", r.RedisServer.format(""))
	}
	fmt.Fprintf(tw, "bench process\t%s\n", r.Bench.format("n/a"))
	if l := r.OrchestratorLog; l != nil {
		fmt.Fprintf(tw, "orchestrator log\t%d warnings, %d errors%s\n", l.Warnings, l.Errors, formatMessages(l.Messages))
	}
	m := r.Mocks
	fmt.Fprintf(tw, "mocks\t%d callouts accepted, %d rejected, %d invalid; %d callbacks sent, %d retried, %d failed\n",
		m.CalloutsAccepted, m.CalloutsRejected, m.CalloutsInvalid, m.CallbacksSent, m.CallbacksRetried, m.CallbacksFailed)
	if c := r.Ceiling; c != nil {
		fmt.Fprintf(tw, "ceiling\t%.0f req/s bare fasthttp 202 (%d requests, %d errors, %.1f s) = %.1f orders/s at %d exchanges/order\n",
			c.RequestsPerSecond, c.Requests, c.Errors, c.Seconds, c.OrdersPerSecond, ExchangesPerOrder)
		fmt.Fprintf(tw, "efficiency\t%.1f %% of the ceiling\n", 100*c.Efficiency)
	}
	h := r.Host
	fmt.Fprintf(tw, "host\t%d CPUs, %s/%s, %s\n", h.NumCPU, h.GOOS, h.GOARCH, h.GoVersion)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// format is p for the table, or na if p is nil.
func (p *Process) format(na string) string {
	if p == nil {
		return na
	}
	s := fmt.Sprintf("pid %d: %.6f CPU s/order (%.2f s, %.2f cores), peak RSS %.1f MiB",
		p.PID, p.CPUSecondsPerOrder, p.CPUSeconds, p.Cores, float64(p.PeakRSSBytes)/(1<<20))
	if p.Error != "" {
		s += " (" + p.Error + ")"
	}
	return s
}

// formatCounts lists counts by key, biggest first, or "none".
func formatCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// formatMessages lists log messages with their counts, after a colon.
func formatMessages(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q ×%d", k, m[k])
	}
	return ": " + strings.Join(parts, ", ")
}
