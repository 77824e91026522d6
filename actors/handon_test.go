package actors

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// waitFor polls cond until it holds, or fails the test after the timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(batchTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A request that reaches a finished order's actor after it left the
// directory is handed on to its successor: were the old actor to step it,
// a second incarnation could load the same order meanwhile, and the old
// one, stopped at the end of its grace period, would leave the request
// unanswered and the retried order running with nobody to drive it.
func TestPassivation_requestReachingAFinishedOrderThatLeftIsHandedOn(t *testing.T) {
	h := newHeldClient(t, Config{Caller: refusingCaller{}, FinishedIdle: 20 * time.Millisecond,
		RequestTimeout: 5 * time.Second, Policy: order.Policy{MaxAttempts: 1}})
	c, store, committer, saver := h.Client, h.store, h.committer, h.saver
	ctx := context.Background()
	o := h.submit(t)
	old, ok := c.rt.dir.lookup(o.OrderID)
	if !ok {
		t.Fatal("a created order is not in the directory")
	}
	stored := func() order.Order {
		rec, err := store.Load(ctx, o.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		var s order.Order
		if err := json.Unmarshal(rec.Data, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitFor(t, "failed (every callout is refused)", func() bool { return stored().Status == order.Failed })
	waitFor(t, "left the directory", func() bool { p, ok := c.rt.dir.lookup(o.OrderID); return !ok || !p.Equal(old) })

	saver.setHold(true)
	answer := make(chan error, 1)
	go func() { _, err := c.request(ctx, old, retryOrder{}); answer <- err }()
	w := saver.next(t) // the retry's write, held
	saver.setHold(false)
	c.Activate(o.OrderID) // another request for the order meanwhile
	waitFor(t, "the old actor stopped (after its grace period)", func() bool {
		_, alive := c.system.ProcessRegistry.GetLocal(old.Id)
		return !alive
	})
	committer.Enqueue(w.rec, w.done)
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
	case <-time.After(batchTestTimeout):
		t.Fatal("retry never answered")
	}
	// The retried order is driven: its callouts are refused again and it fails.
	waitFor(t, "failed again after the retry", func() bool { s := stored(); return s.Status == order.Failed && s.Retries == 1 })
}
