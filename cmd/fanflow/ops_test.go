package main

import (
	"strings"
	"testing"

	"github.com/fanflow/fanflow/order"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// counter returns the value of a counter sample with exactly these labels.
func counter(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if match && m.Counter != nil {
			return m.Counter.GetValue()
		}
	}
	return 0
}

func TestE2E_metricsCountWhatTheRunDid(t *testing.T) {
	const n = 20
	addr := freeAddr(t)
	start(t, addr, "serve", "--listen", addr, "--store", "memory", "--time-scale", "0", "--log-format", "json")
	ids := createMany(t, addr, n, `{"parameters":{}}`)
	waitAll(t, addr, ids)
	// A request the run refuses: bad JSON.
	if resp, err := client.Post("http://"+addr+"/v1/parallelCallbacks", "application/json", strings.NewReader("{")); err == nil {
		resp.Body.Close()
	}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fanflow_requests_total", map[string]string{"route": "create", "outcome": "ok"}, n},
		{"fanflow_requests_total", map[string]string{"route": "create", "outcome": "invalid_json"}, 1},
		{"fanflow_requests_total", map[string]string{"route": "callback", "outcome": "ok"}, 3 * n},
		{"fanflow_orders_finished_total", map[string]string{"status": "completed"}, n},
		{"fanflow_orders_started_total", map[string]string{}, n},
		{"fanflow_callouts_total", map[string]string{"result": "accepted"}, 3 * n},
	} {
		if got := counter(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// GETs done by waitAll are counted too, at least one per order.
	if got := counter(fams, "fanflow_requests_total", map[string]string{"route": "get", "outcome": "ok"}); got < n {
		t.Errorf("get ok = %v, want >= %d", got, n)
	}
}

func TestE2E_sigtermExitsCleanlyAndKeepsEveryAcknowledgedOrder(t *testing.T) {
	const n = 200
	store, _ := storeArgs(t, "embedded")
	addr, mockAddr := freeAddr(t), freeAddr(t)
	start(t, mockAddr, "mock", "--listen", mockAddr, "--fanflow-url", "http://"+addr,
		"--time-scale", "0.05", "--jitter", "500ms", "--log-level", "error")
	args := append([]string{"serve", "--listen", addr, "--mocks=false", "--jobs-base-url", "http://" + mockAddr,
		"--callback-secret", "sigterm-test-secret-0123456789", "--log-format", "json"}, store...)
	first := start(t, addr, args...)
	ids := createMany(t, addr, n, `{"parameters":{}}`)
	if err := first.stop(); err != nil {
		t.Fatalf("SIGTERM mid-run: %v\n%s", err, tail(first.log.String(), 20))
	}
	start(t, addr, args...)
	for id, o := range waitAll(t, addr, ids) {
		if o.Status != order.Completed {
			t.Errorf("order %s ended %s", id, o.Status)
		}
	}
}
