package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/token"
)

func TestRedisOutage_refusesWhileDownAndLosesNothingAcknowledged(t *testing.T) {
	const n = 100
	const secret = "outage-test-secret-0123456789"
	store, redis := storeArgs(t, "redis", "--appendonly", "yes", "--appendfsync", "always")
	addr, mockAddr := freeAddr(t), freeAddr(t)
	// Callbacks come 2–6.5 s after their callout: most are still due when Redis stops.
	start(t, mockAddr, "mock", "--listen", mockAddr, "--fanflow-url", "http://"+addr,
		"--time-scale", "0.2", "--jitter", "500ms", "--log-level", "error")
	p := start(t, addr, append([]string{"serve", "--listen", addr, "--mocks=false", "--jobs-base-url", "http://" + mockAddr,
		"--callback-secret", secret, "--log-format", "json"}, store...)...)
	ids := createMany(t, addr, n, `{"parameters":{"outage":true}}`)
	first, _, err := get(addr, ids[0])
	if err != nil {
		t.Fatal(err)
	}

	redis.Stop()
	resp, err := client.Post("http://"+addr+"/v1/parallelCallbacks", "application/json", strings.NewReader(`{"parameters":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("create during the outage: HTTP %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// BatchJobA calls back after 6 s at this time scale: its job is still open.
	var jobA order.Job
	for _, j := range first.Jobs {
		if j.Type == "BatchJobA" {
			jobA = j
		}
	}
	signer, err := token.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"orderId":%q,"jobId":%q,"callbackToken":%q,"result":"sent during the outage"}`,
		first.OrderID, jobA.JobID, signer.Token(first.OrderID, jobA.JobID))
	resp, err = client.Post("http://"+addr+"/v1/parallelCallbacks/results", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("callback during the outage: HTTP %d, want 503", resp.StatusCode)
	}
	resp, err = client.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the outage: HTTP %d, want 503", resp.StatusCode)
	}

	redis.Restart() // the same port and directory: the AOF brings back what was written
	for id, o := range waitAll(t, addr, ids) {
		if o.Status != order.Completed {
			t.Errorf("order %s ended %s: %+v", id, o.Status, o.Error)
		}
		if id == first.OrderID {
			for _, j := range o.Jobs {
				if j.JobID == jobA.JobID && strings.Contains(string(j.Result), "outage") {
					t.Errorf("the callback refused with 503 was applied: %s", j.Result)
				}
			}
		}
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if total := storedTotal(t, store); total != fmt.Sprint(n) {
		t.Errorf("store holds %s orders, want %d (a refused create must leave nothing)", total, n)
	}
}
