package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/redisstore"
)

// TestRecovery_batchedLoadsResendUnacknowledgedCalloutsAndArmDeadlines
// leaves in Redis what a crashed fanflow would: more running orders than
// one recovery batch whose callouts were never acknowledged, and one whose
// jobs were all accepted (so no callback will come) with a deadline soon.
// After the restart every callout is sent again (the job services call back
// and the orders complete) and the deadline fires from its stored time.
func TestRecovery_batchedLoadsResendUnacknowledgedCalloutsAndArmDeadlines(t *testing.T) {
	const n = 700 // more than one batch of 512
	store, _ := storeArgs(t, "redis")
	url := store[slices.Index(store, "--redis-url")+1]
	rs, err := redisstore.New(redisstore.Options{URL: url, Prefix: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var ids []string
	var batch []persistence.Record
	for range n {
		r, err := runningRecord(time.Now().Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		batch, ids = append(batch, r), append(ids, r.OrderID)
	}
	soon, err := runningRecord(time.Now().Add(2*time.Second), 3)
	if err != nil {
		t.Fatal(err)
	}
	batch = append(batch, soon)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := rs.Save(ctx, batch); err != nil {
		t.Fatal(err)
	}

	addr, mockAddr := freeAddr(t), freeAddr(t)
	start(t, mockAddr, "mock", "--listen", mockAddr, "--fanflow-url", "http://"+addr, "--time-scale", "0", "--log-level", "warn")
	start(t, addr, append([]string{"serve", "--listen", addr, "--mocks=false", "--jobs-base-url", "http://" + mockAddr,
		"--callback-secret", "recovery-test-secret-0123456789", "--log-level", "warn"}, store...)...)

	for id, o := range waitAll(t, addr, ids) {
		if o.Status != order.Completed {
			t.Fatalf("order %s ended %s: %+v", id, o.Status, o.Error)
		}
		for _, j := range o.Jobs {
			if j.Attempts != 2 {
				t.Fatalf("order %s job %s: %d attempts, want 2 (the lost one, then the one sent on recovery)", id, j.JobID, j.Attempts)
			}
		}
	}
	o := waitAll(t, addr, []string{soon.OrderID})[soon.OrderID]
	if o.Status != order.Expired {
		t.Fatalf("order with every job accepted and its deadline passed: %s, want expired", o.Status)
	}
	if o.UpdatedAt.Before(o.Deadline) {
		t.Fatalf("expired at %v, before its stored deadline %v", o.UpdatedAt, o.Deadline)
	}
}
