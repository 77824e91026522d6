package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

// recoverySource is the store as Recover reads it: it counts LoadMany
// calls, can hold them until release is closed, fail them, and add ids
// without a snapshot to the active index.
type recoverySource struct {
	*memory.Store
	extra   []string      // ids the index lists but the store does not hold
	release chan struct{} // nil: LoadMany does not wait
	fail    error         // LoadMany fails with it when set

	mu        sync.Mutex
	loadManys int
}

func (s *recoverySource) Active(ctx context.Context, fn func(string, time.Time) error) error {
	if err := s.Store.Active(ctx, fn); err != nil {
		return err
	}
	for _, id := range s.extra {
		if err := fn(id, time.Now().Add(time.Hour)); err != nil {
			return err
		}
	}
	return nil
}

func (s *recoverySource) LoadMany(ctx context.Context, ids []string) ([]persistence.Record, error) {
	s.mu.Lock()
	s.loadManys++
	s.mu.Unlock()
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.fail != nil {
		return nil, s.fail
	}
	return s.Store.LoadMany(ctx, ids)
}

func (s *recoverySource) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.loadManys }

func recoverAll(t *testing.T, h *harness, src actors.Recoverer, opts actors.RecoverOptions) (*actors.Recovery, actors.RecoveryStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rec, err := h.client.Recover(ctx, src, opts)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	st, err := rec.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rec, st
}

func TestRecover_loadsInBatchesResendsUnacknowledgedCalloutsAndArmsDeadlines(t *testing.T) {
	loader := &countingLoader{}
	h := newHarness(t, nil, func(c *actors.Config) { loader.Loader = c.Loader; c.Loader = loader })
	far := time.Now().Add(time.Hour)
	oneAccepted := storeRunning(t, h, far, 1)
	pastDeadline := storeRunning(t, h, time.Now().Add(-time.Millisecond), 3)
	soon := storeRunning(t, h, time.Now().Add(200*time.Millisecond), 3)
	var waiting []order.Order
	for range 20 {
		waiting = append(waiting, storeRunning(t, h, far, 3))
	}
	src := &recoverySource{Store: h.store, extra: []string{"gone-order"}}

	rec, st := recoverAll(t, h, src, actors.RecoverOptions{Batch: 5})
	if rec.Known() != 24 || st != (actors.RecoveryStats{Loaded: 23, Gone: 1}) {
		t.Fatalf("known %d, stats %+v; want 24 known, 23 loaded, 1 gone", rec.Known(), st)
	}
	if n := src.count(); n != 5 {
		t.Errorf("%d LoadMany calls for 24 orders in batches of 5, want 5", n)
	}
	if n := loader.count(); n != 0 {
		t.Errorf("%d single loads during recovery, want none", n)
	}

	// The callouts that were never acknowledged are sent again, and only those.
	resent := map[string]int{}
	for range 2 {
		c := h.caller.next(t)
		if c.OrderID != oneAccepted.OrderID {
			t.Fatalf("callout for order %s, which had every callout acknowledged", c.OrderID)
		}
		resent[c.JobID] = c.Attempt
	}
	for _, j := range oneAccepted.Jobs[1:] {
		if resent[j.JobID] != 2 {
			t.Errorf("job %s resent as attempt %d, want 2 (all: %v)", j.JobID, resent[j.JobID], resent)
		}
	}
	// The deadlines are armed from their stored times: the passed one at
	// once, the near one when it comes, without any request.
	for _, o := range []order.Order{pastDeadline, soon} {
		h.waitStored(t, o.OrderID, "expired", func(o order.Order) bool { return o.Status == order.Expired })
	}
	// A recovered order takes its callbacks.
	for _, j := range waiting[0].Jobs {
		out, err := h.callback(actors.CallbackRequest{OrderID: waiting[0].OrderID, JobID: j.JobID})
		if err != nil || out.Duplicate {
			t.Fatalf("callback %s: outcome %+v, err %v", j.JobID, out, err)
		}
	}
	if got := h.stored(t, waiting[0].OrderID); got.Status != order.Completed {
		t.Fatalf("status %s, want completed", got.Status)
	}
	if _, err := h.callback(actors.CallbackRequest{OrderID: "gone-order", JobID: "j"}); !errors.Is(err, actors.ErrNotFound) {
		t.Errorf("callback for an indexed order without snapshot: %v, want ErrNotFound", err)
	}
	select {
	case c := <-h.caller.calls:
		t.Errorf("unexpected callout %+v", c)
	default:
	}
}

func TestRecover_callbackBeforeItsBatchIsAnsweredAndTheBatchChangesNothing(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(time.Hour), 3)
	src := &recoverySource{Store: h.store, release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rec, err := h.client.Recover(ctx, src, actors.RecoverOptions{})
	if err != nil || rec.Known() != 1 {
		t.Fatalf("Recover: known %d, err %v", rec.Known(), err)
	}
	// The batch is held: the order is known but not loaded.
	out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID})
	if err != nil || out.Duplicate || out.JobStatus != order.JobCompleted || out.OrderStatus != order.Running {
		t.Fatalf("callback during recovery: outcome %+v, err %v", out, err)
	}
	close(src.release)
	if st, err := rec.Wait(ctx); err != nil || st.Loaded != 1 {
		t.Fatalf("Wait: %+v, %v", st, err)
	}
	// The batch's older snapshot came after the order was loaded: ignored.
	data, err := h.client.Get(ctx, o.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Jobs[0].Status != order.JobCompleted {
		t.Fatalf("after the batch, job 0 is %s in memory, want completed", got.Jobs[0].Status)
	}
	if out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil || !out.Duplicate {
		t.Fatalf("repeated callback: outcome %+v, err %v; want a duplicate", out, err)
	}
	for _, j := range o.Jobs[1:] {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Completed {
		t.Fatalf("status %s, want completed", got.Status)
	}
}

func TestRecover_batchThatCannotLoadLeavesItsOrdersToTheirFirstRequest(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(time.Hour), 3)
	src := &recoverySource{Store: h.store, fail: fmt.Errorf("redis down: %w", persistence.ErrUnavailable)}
	_, st := recoverAll(t, h, src, actors.RecoverOptions{RetryFor: time.Millisecond})
	if st != (actors.RecoveryStats{Failed: 1}) {
		t.Fatalf("stats %+v, want 1 failed", st)
	}
	out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[1].JobID})
	if err != nil || out.Duplicate || out.JobStatus != order.JobCompleted {
		t.Fatalf("callback after a failed recovery load: outcome %+v, err %v", out, err)
	}
}

func TestRecover_ordersAlreadyInMemoryAreLeftAlone(t *testing.T) {
	loader := &countingLoader{}
	h := newHarness(t, nil, func(c *actors.Config) { loader.Loader = c.Loader; c.Loader = loader })
	o := h.submit(t, actors.SubmitRequest{})
	for range 3 {
		h.caller.next(t)
	}
	src := &recoverySource{Store: h.store}
	rec, st := recoverAll(t, h, src, actors.RecoverOptions{})
	if rec.Known() != 0 || st != (actors.RecoveryStats{}) || src.count() != 0 {
		t.Fatalf("known %d, stats %+v, %d LoadMany calls; want nothing for an order in memory", rec.Known(), st, src.count())
	}
	if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil {
		t.Fatal(err)
	}
}
