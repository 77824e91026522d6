package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// passivating returns a harness whose waiting orders leave memory after
// idle, and the loader that counts its loads.
func passivating(t *testing.T, caller *fakeCaller, idle time.Duration, opts ...option) (*harness, *countingLoader) {
	t.Helper()
	loader := &countingLoader{}
	opts = append(opts, func(c *actors.Config) {
		loader.Loader = c.Loader
		c.Loader = loader
		c.PassivateAfter = idle
	})
	return newHarness(t, caller, opts...), loader
}

// waitFor polls cond until it holds, or fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPassivation_waitingOrderLeavesMemoryAndCompletesFromTheStore(t *testing.T) {
	h, loader := passivating(t, nil, 5*time.Millisecond)
	o := h.submit(t, actors.SubmitRequest{})
	for range o.Jobs {
		h.caller.next(t)
	}
	waitFor(t, "left memory", func() bool { return h.client.Passivated() == 1 && h.client.Resident() == 0 })
	if n := loader.count(); n != 0 {
		t.Fatalf("%d loads before any callback, want 0", n)
	}
	// A read is served from the store meanwhile.
	data, err := h.client.Get(context.Background(), o.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range decode(t, data).Jobs {
		if j.Status != order.JobProcessing {
			t.Fatalf("read while away: job %s is %s, want processing", j.JobID, j.Status)
		}
	}
	for i, j := range o.Jobs {
		out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID})
		if err != nil {
			t.Fatalf("callback %d: %v", i, err)
		}
		if out.JobStatus != order.JobCompleted || out.Duplicate {
			t.Fatalf("callback %d: %+v", i, out)
		}
	}
	if s := h.obs.waitFinished(t); s != order.Completed {
		t.Fatalf("finished as %s", s)
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Completed {
		t.Fatalf("stored status %s, want completed", got.Status)
	}
	if loader.count() == 0 {
		t.Fatal("the order was never loaded back from the store")
	}
	if n := h.client.Passivated(); n != 0 {
		t.Fatalf("%d orders still counted away after completing", n)
	}
	if n := h.obs.startedCount(); n != 1 {
		t.Fatalf("started %d times, want once: coming back from the store is no new start", n)
	}
}

func TestPassivation_awayOrderExpiresAtItsDeadline(t *testing.T) {
	h, loader := passivating(t, nil, time.Millisecond)
	o := h.submit(t, actors.SubmitRequest{Deadline: 3 * time.Second})
	for range o.Jobs {
		h.caller.next(t)
	}
	waitFor(t, "left memory", func() bool { return h.client.Passivated() == 1 })
	if s := h.obs.waitFinished(t); s != order.Expired {
		t.Fatalf("finished as %s, want expired", s)
	}
	got := h.stored(t, o.OrderID)
	if got.Status != order.Expired || got.CompletedAt == nil || got.CompletedAt.Before(o.Deadline) {
		t.Fatalf("stored %s at %v, want expired at or after its deadline %v", got.Status, got.CompletedAt, o.Deadline)
	}
	if loader.count() == 0 {
		t.Fatal("the order expired without being brought back from the store")
	}
}

func TestPassivation_callbackRacingPassivationIsNeverLost(t *testing.T) {
	const orders, copies = 12, 3
	// Orders leave memory whenever they are idle for a millisecond, so most
	// callbacks meet an order leaving or away.
	h, loader := passivating(t, nil, time.Millisecond, func(c *actors.Config) { c.RequestTimeout = 5 * time.Second })
	var all []order.Order
	for range orders {
		all = append(all, h.submit(t, actors.SubmitRequest{}))
	}
	for range orders * 3 {
		h.caller.next(t)
	}
	waitFor(t, "every order left memory", func() bool { return h.client.Passivated() == orders })
	var wg sync.WaitGroup
	errs := make(chan error, orders*3*copies)
	for _, o := range all {
		for _, j := range o.Jobs {
			for range copies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
						errs <- fmt.Errorf("order %s job %s: %w", o.OrderID, j.JobID, err)
					}
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for range orders {
		if s := h.obs.waitFinished(t); s != order.Completed {
			t.Fatalf("an order finished as %s", s)
		}
	}
	if n := loader.count(); n < orders {
		t.Errorf("%d loads for %d orders that were away", n, orders)
	}
	for _, o := range all {
		got := h.stored(t, o.OrderID)
		if got.Status != order.Completed {
			t.Errorf("order %s stored as %s, want completed", o.OrderID, got.Status)
		}
		for _, j := range got.Jobs {
			if j.Status != order.JobCompleted {
				t.Errorf("order %s job %s stored as %s", o.OrderID, j.JobID, j.Status)
			}
		}
	}
}

func TestPassivation_orderWithACalloutRetryingStaysInMemory(t *testing.T) {
	caller := newFakeCaller(func(c actors.Callout) (bool, error) {
		if c.Endpoint == "/v1/batchJobA" {
			return true, errors.New("HTTP 503")
		}
		return false, nil
	})
	h, loader := passivating(t, caller, time.Millisecond, func(c *actors.Config) {
		c.Policy = order.Policy{MaxAttempts: 3, BackoffBase: time.Hour, BackoffMax: time.Hour} // the retry waits
	})
	retrying := h.submit(t, actors.SubmitRequest{})
	for range retrying.Jobs {
		h.caller.next(t)
	}
	h.waitStored(t, retrying.OrderID, "scheduled its retry", func(o order.Order) bool {
		n := 0
		for _, j := range o.Jobs {
			if j.RetryAt != nil || j.Status == order.JobProcessing {
				n++
			}
		}
		return n == len(o.Jobs)
	})
	// A witness that only waits, idle for less time than the retrying one.
	h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobB"}})
	h.caller.next(t)
	waitFor(t, "the waiting order left memory", func() bool { return h.client.Passivated() == 1 && h.client.Resident() == 1 })
	if n := loader.count(); n != 0 {
		t.Fatalf("%d loads: the retrying order left memory", n)
	}
	data, err := h.client.Get(context.Background(), retrying.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Status != order.Running {
		t.Fatalf("retrying order is %s", got.Status)
	}
}

// forgetfulLoader loses every order once gone is set, as if their keys had
// been deleted from the store.
type forgetfulLoader struct {
	actors.Loader
	gone  atomic.Bool
	loads atomic.Int64
}

func (l *forgetfulLoader) Load(ctx context.Context, id string) (persistence.Record, error) {
	l.loads.Add(1)
	if l.gone.Load() {
		return persistence.Record{}, fmt.Errorf("test: load %s: %w", id, persistence.ErrNotFound)
	}
	return l.Loader.Load(ctx, id)
}

func TestPassivation_awayOrderGoneFromTheStoreIsNotWokenAgain(t *testing.T) {
	loader := &forgetfulLoader{}
	h := newHarness(t, nil, func(c *actors.Config) {
		loader.Loader = c.Loader
		c.Loader = loader
		c.PassivateAfter = time.Millisecond
	})
	o := h.submit(t, actors.SubmitRequest{Deadline: 2 * time.Second})
	for range o.Jobs {
		h.caller.next(t)
	}
	waitFor(t, "left memory", func() bool { return h.client.Passivated() == 1 && h.client.Resident() == 0 })
	loader.gone.Store(true)
	// At its deadline it is looked for, found missing, and forgotten.
	waitFor(t, "forgotten", func() bool { return loader.loads.Load() > 0 && h.client.Passivated() == 0 })
}

func TestPassivation_awayOrderCanBeCancelled(t *testing.T) {
	h, loader := passivating(t, nil, time.Millisecond)
	o := h.submit(t, actors.SubmitRequest{})
	for range o.Jobs {
		h.caller.next(t)
	}
	waitFor(t, "left memory", func() bool { return h.client.Passivated() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data, err := h.client.Cancel(ctx, o.OrderID, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Status != order.Cancelled {
		t.Fatalf("cancel answered %s", got.Status)
	}
	if s := h.obs.waitFinished(t); s != order.Cancelled {
		t.Fatalf("finished as %s", s)
	}
	if loader.count() == 0 || h.client.Passivated() != 0 {
		t.Fatalf("%d loads, %d away: the cancel did not bring the order back", loader.count(), h.client.Passivated())
	}
}
