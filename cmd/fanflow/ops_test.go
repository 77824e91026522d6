package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

func TestE2E_sigtermExitsCleanlyKeepsEveryAcknowledgedOrderAndItsTokens(t *testing.T) {
	const n = 200
	store, _ := storeArgs(t, "embedded")
	addr, mockAddr := freeAddr(t), freeAddr(t)
	start(t, mockAddr, "mock", "--listen", mockAddr, "--fanflow-url", "http://"+addr,
		"--time-scale", "0.05", "--jitter", "500ms", "--log-level", "error")
	// No --callback-secret: the secret fanflow generates is kept in the
	// store, so the tokens of the first run's callouts stay valid.
	args := append([]string{"serve", "--listen", addr, "--mocks=false", "--jobs-base-url", "http://" + mockAddr,
		"--log-format", "json"}, store...)
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

func TestE2E_concurrentCreatesWithOneIdempotencyKeyMakeOneOrder(t *testing.T) {
	const n = 20
	addr := freeAddr(t)
	start(t, addr, "serve", "--listen", addr, "--store", "memory", "--time-scale", "0", "--log-format", "json")
	bodies := make([]string, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest("POST", "http://"+addr+"/v1/parallelCallbacks", strings.NewReader(`{"parameters":{"n":1}}`))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "client-order-7")
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies[i], codes[i] = string(b), resp.StatusCode
		}()
	}
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusAccepted || bodies[i] != bodies[0] {
			t.Fatalf("answer %d: HTTP %d %s; want 202 and the same body as the first:\n%s", i, codes[i], bodies[i], bodies[0])
		}
	}
	resp, err := client.Get("http://" + addr + "/v1/parallelCallbacks?limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Orders []order.Order `json:"orders"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if len(page.Orders) != 1 {
		t.Fatalf("%d orders listed, want 1", len(page.Orders))
	}
}

func TestE2E_listingPagesThroughEveryOrderOnce(t *testing.T) {
	const n = 250
	addr := freeAddr(t)
	start(t, addr, "serve", "--listen", addr, "--store", "embedded", "--data-dir", t.TempDir(), "--time-scale", "0",
		"--admin-token", "list-token", "--log-format", "json")
	ids := createMany(t, addr, n, `{"parameters":{}}`)
	waitAll(t, addr, ids)
	page := func(query string) (orders []order.Order, next *string) {
		req, err := http.NewRequest("GET", "http://"+addr+"/v1/parallelCallbacks?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer list-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("list %s: HTTP %d %s", query, resp.StatusCode, b)
		}
		var body struct {
			Orders     []order.Order `json:"orders"`
			NextCursor *string       `json:"nextCursor"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.Orders, body.NextCursor
	}
	seen := map[string]int{}
	var prev *order.Order
	query := "status=completed&limit=40"
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("listing does not end")
		}
		orders, next := page(query)
		for i := range orders {
			o := orders[i]
			seen[o.OrderID]++
			if o.Status != order.Completed {
				t.Errorf("filtered listing returned a %s order", o.Status)
			}
			if prev != nil && o.CreatedAt.After(prev.CreatedAt) {
				t.Errorf("order %s is newer than the one before it", o.OrderID)
			}
			prev = &orders[i]
		}
		if next == nil {
			break
		}
		query = "status=completed&limit=40&cursor=" + url.QueryEscape(*next)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("order %s listed %d times", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d orders listed, want %d", len(seen), n)
	}
	if running, _ := page("status=running"); len(running) != 0 {
		t.Errorf("%d running orders listed, want 0", len(running))
	}
}
