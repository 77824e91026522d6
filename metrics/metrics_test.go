package metrics_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fanflow/fanflow/metrics"
	"github.com/fanflow/fanflow/order"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads the exposition back as Prometheus would.
func parse(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.ContentType(), "text/plain") {
		t.Fatalf("content type %q", m.ContentType())
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return families
}

// value returns the value of the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with %v", name, want)
	return 0
}

func TestMetrics_countWhatHappened(t *testing.T) {
	m := metrics.New()
	for range 3 {
		m.OrderStarted()
		m.Answered("create", "ok")
	}
	m.Answered("callback", "duplicate")
	m.Answered("callback", "order_finished")
	m.OrderFinished(order.Completed, 40*time.Millisecond)
	m.OrderFinished(order.Expired, time.Minute)
	m.CalloutDone(true)
	m.CalloutDone(false)
	m.SnapshotStored()
	m.BatchWritten(12, time.Millisecond, nil)
	m.BatchWritten(3, time.Millisecond, errors.New("down"))

	fams := parse(t, m)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fanflow_requests_total", map[string]string{"route": "create", "outcome": "ok"}, 3},
		{"fanflow_requests_total", map[string]string{"route": "callback", "outcome": "duplicate"}, 1},
		{"fanflow_requests_total", map[string]string{"route": "callback", "outcome": "order_finished"}, 1},
		{"fanflow_orders_started_total", nil, 3},
		{"fanflow_orders_finished_total", map[string]string{"status": "completed"}, 1},
		{"fanflow_orders_finished_total", map[string]string{"status": "expired"}, 1},
		{"fanflow_orders_active", nil, 1},
		{"fanflow_order_duration_seconds", nil, 2},
		{"fanflow_callouts_total", map[string]string{"result": "accepted"}, 1},
		{"fanflow_callouts_total", map[string]string{"result": "failed"}, 1},
		{"fanflow_snapshots_stored_total", nil, 1},
		{"fanflow_snapshot_batch_size", nil, 2},
		{"fanflow_snapshot_batch_errors_total", nil, 1},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}
}
