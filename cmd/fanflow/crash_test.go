package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence/redisstore/redistest"
)

// storeArgs returns the flags that point fanflow at a fresh store of the
// named kind, starting a redis-server for "redis".
func storeArgs(t *testing.T, kind string, redisArgs ...string) ([]string, *redistest.Server) {
	t.Helper()
	switch kind {
	case "embedded":
		return []string{"--store", "embedded", "--data-dir", t.TempDir()}, nil
	case "redis":
		srv := redistest.Start(t, redisArgs...)
		return []string{"--store", "redis", "--redis-url", srv.URL(), "--redis-prefix", "e2e"}, srv
	}
	t.Fatalf("unknown store %q", kind)
	return nil, nil
}

// appliedTwice returns the jobs whose callback was applied (not as a
// duplicate) more than once across the given logs.
func appliedTwice(t *testing.T, logs ...string) []string {
	t.Helper()
	applied := map[string]int{}
	for _, l := range logs {
		for _, rec := range logLines(t, l, "callback applied") {
			if rec["duplicate"] == false {
				applied[fmt.Sprint(rec["orderId"], "/", rec["jobId"])]++
			}
		}
	}
	var twice []string
	for k, n := range applied {
		if n > 1 {
			twice = append(twice, k)
		}
	}
	return twice
}

// storedTotal counts the orders in the store with `fanflow inspect stats`.
func storedTotal(t *testing.T, store []string) string {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"inspect", "stats"}, store...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("inspect stats: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "total" {
			return f[1]
		}
	}
	t.Fatalf("inspect stats printed no total:\n%s", out)
	return ""
}

func TestCrash_kill9MidFlightLosesNothing(t *testing.T) {
	for _, kind := range []string{"embedded", "redis"} {
		t.Run(kind, func(t *testing.T) {
			const n = 500
			store, _ := storeArgs(t, kind)
			addr, mockAddr := freeAddr(t), freeAddr(t)
			// Job services in their own process: they call back 0.5–2 s after
			// a callout, and keep retrying while fanflow is down.
			start(t, mockAddr, "mock", "--listen", mockAddr, "--fanflow-url", "http://"+addr,
				"--time-scale", "0.05", "--jitter", "500ms", "--log-level", "warn")
			args := append([]string{"serve", "--listen", addr, "--mocks=false", "--jobs-base-url", "http://" + mockAddr,
				"--callback-secret", "crash-test-secret-0123456789", "--log-format", "json", "--log-level", "debug"}, store...)

			first := start(t, addr, args...)
			ids := createMany(t, addr, n, `{"parameters":{"crash":true}}`)
			first.kill() // kill -9, with callbacks and callouts in flight

			second := start(t, addr, args...)
			for id, o := range waitAll(t, addr, ids) {
				if o.Status != order.Completed {
					t.Errorf("order %s ended %s: %+v", id, o.Status, o.Error)
				}
			}
			if err := second.stop(); err != nil {
				t.Fatal(err)
			}
			if twice := appliedTwice(t, first.log.String(), second.log.String()); len(twice) > 0 {
				t.Errorf("%d callbacks applied twice, e.g. %s", len(twice), twice[0])
			}
			unique := map[string]bool{}
			for _, id := range ids {
				unique[id] = true
			}
			if len(unique) != n {
				t.Errorf("%d distinct order ids for %d creates", len(unique), n)
			}
			if total := storedTotal(t, store); total != fmt.Sprint(n) {
				t.Errorf("store holds %s orders, want %d", total, n)
			}
		})
	}
}
