// Package metrics keeps fanflow's Prometheus metrics and writes them in the
// text exposition format. It implements the observer interfaces of the
// actors and httpapi packages and the committer's batch hook.
package metrics

import (
	"bytes"
	"io"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Metrics holds every fanflow metric in its own registry. It is safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	ordersStarted prometheus.Counter
	finished      *prometheus.CounterVec
	active        prometheus.Gauge
	duration      prometheus.Histogram
	callouts      *prometheus.CounterVec
	snapshots     prometheus.Counter
	batchSize     prometheus.Histogram
	batchLatency  prometheus.Histogram
	batchErrors   prometheus.Counter
}

// New returns Metrics with Go runtime and process collectors included.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanflow_requests_total",
			Help: "API requests answered, by route (create, callback, get, list, cancel, retry) and outcome (ok, duplicate, or the error code, e.g. order_finished for a late callback, unauthorized).",
		}, []string{"route", "outcome"}),
		ordersStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanflow_orders_started_total",
			Help: "Orders that began running in this process: created, recovered or retried.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanflow_orders_finished_total",
			Help: "Orders that finished in this process, by status.",
		}, []string{"status"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fanflow_orders_active",
			Help: "Orders running in this process now.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fanflow_order_duration_seconds",
			Help:    "Time from an order's creation to its end.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 12), // 5 ms … ~15 min
		}),
		callouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanflow_callouts_total",
			Help: "Callout attempts to job services, by result (accepted, failed).",
		}, []string{"result"}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanflow_snapshots_stored_total",
			Help: "Order snapshots made durable.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fanflow_snapshot_batch_size",
			Help:    "Snapshots written per group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 … 512
		}),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fanflow_snapshot_batch_write_seconds",
			Help:    "Time to write one group-commit batch to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 0.1 ms … ~6 s
		}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanflow_snapshot_batch_errors_total",
			Help: "Group-commit batches the store refused.",
		}),
	}
	m.reg.MustRegister(m.requests, m.ordersStarted, m.finished, m.active, m.duration, m.callouts,
		m.snapshots, m.batchSize, m.batchLatency, m.batchErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Answered implements httpapi.Observer.
func (m *Metrics) Answered(route, outcome string) {
	m.requests.WithLabelValues(route, outcome).Inc()
}

// OrderStarted implements actors.Observer.
func (m *Metrics) OrderStarted() {
	m.ordersStarted.Inc()
	m.active.Inc()
}

// OrderFinished implements actors.Observer.
func (m *Metrics) OrderFinished(s order.Status, age time.Duration) {
	m.finished.WithLabelValues(s.String()).Inc()
	m.active.Dec()
	m.duration.Observe(age.Seconds())
}

// SnapshotStored implements actors.Observer.
func (m *Metrics) SnapshotStored() { m.snapshots.Inc() }

// CalloutDone implements actors.Observer.
func (m *Metrics) CalloutDone(accepted bool) {
	if accepted {
		m.callouts.WithLabelValues("accepted").Inc()
		return
	}
	m.callouts.WithLabelValues("failed").Inc()
}

// BatchWritten records one group-commit batch: its size, how long the
// write took and whether it failed.
func (m *Metrics) BatchWritten(size int, took time.Duration, err error) {
	m.batchSize.Observe(float64(size))
	m.batchLatency.Observe(took.Seconds())
	if err != nil {
		m.batchErrors.Inc()
	}
}

// ContentType is the media type of WriteTo's output.
func (m *Metrics) ContentType() string { return string(expfmt.NewFormat(expfmt.TypeTextPlain)) }

// WriteTo writes every metric in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return 0, err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return 0, err
		}
	}
	return b.WriteTo(w)
}
