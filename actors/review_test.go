package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// gatedSaver holds every write until its gate is closed.
type gatedSaver struct {
	inner actors.Saver
	gate  chan struct{}
}

func (g *gatedSaver) Enqueue(r persistence.Record, done func(error)) {
	go func() {
		<-g.gate
		g.inner.Enqueue(r, done)
	}()
}

func TestSubmit_unansweredCreateKeepsItsKeySoARepeatGetsTheSameOrder(t *testing.T) {
	gate := make(chan struct{})
	h := newHarness(t, nil, func(c *actors.Config) {
		c.Saver = &gatedSaver{inner: c.Saver, gate: gate}
		c.RequestTimeout = 200 * time.Millisecond
	})
	req := actors.SubmitRequest{Parameters: json.RawMessage(`{}`), IdempotencyKey: "slow-store"}
	if _, err := h.client.Submit(context.Background(), req); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("first create: err = %v, want ErrUnavailable (the store is slow)", err)
	}
	close(gate) // the first create's snapshot now becomes durable
	var got order.Order
	deadline := time.Now().Add(testTimeout)
	for {
		data, err := h.client.Submit(context.Background(), req)
		if err == nil {
			got = decode(t, data)
			break
		}
		if !errors.Is(err, actors.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("repeat: %v", err)
		}
	}
	page, err := h.store.List(context.Background(), persistence.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].OrderID != got.OrderID {
		t.Fatalf("store holds %d orders for one key, want 1 (the one returned)", len(page.Records))
	}
}

func TestRetry_whileCompensatingCallsTheJobsOutAgain(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	caller := newFakeCaller(func(c actors.Callout) (bool, error) {
		switch {
		case strings.HasSuffix(c.Endpoint, "/cancel"):
			<-release // a slow cancel endpoint
		case c.Endpoint == "/v1/batchJobA" && c.Attempt == 1:
			return false, errors.New("HTTP 400: rejected")
		}
		return false, nil
	})
	h := newHarness(t, caller, withCancelEndpoints)
	o := h.submit(t, actors.SubmitRequest{})
	if s := h.obs.waitFinished(t); s != order.Failed {
		t.Fatalf("finished as %s", s)
	}
	h.waitStored(t, o.OrderID, "B and C compensating", func(o order.Order) bool {
		n := 0
		for _, j := range o.Jobs {
			if j.Compensation != nil && j.Compensation.Status == order.DeliveryPending {
				n++
			}
		}
		return n == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := h.client.Retry(ctx, o.OrderID); err != nil {
		t.Fatal(err)
	}
	// Every job is called out again, although B's and C's cancels still hang.
	again := map[string]bool{}
	for len(again) < 3 {
		c := h.caller.next(t)
		if !strings.HasSuffix(c.Endpoint, "/cancel") && c.Attempt == 2 {
			again[c.Endpoint] = true
		}
	}
	once.Do(func() { close(release) })
	for _, j := range o.Jobs {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
			t.Fatalf("callback %s: %v", j.Type, err)
		}
	}
	if s := h.obs.waitFinished(t); s != order.Completed {
		t.Fatalf("retried order finished as %s", s)
	}
}

func TestActivate_nothingStepsBeforeTheActivationIsStored(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(-time.Millisecond), 3) // its deadline passed while away
	h.saver.fail(true)
	result := make(chan error, 1)
	go func() {
		_, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID})
		result <- err
	}()
	deadline := time.Now().Add(testTimeout)
	for h.saver.refusedCount() == 0 { // the activation (expiry) could not be stored
		if time.Now().After(deadline) {
			t.Fatal("the activation never tried to store its expiry")
		}
		time.Sleep(time.Millisecond)
	}
	h.saver.fail(false)
	if err := <-result; !errors.Is(err, order.ErrOrderFinished) {
		t.Fatalf("callback err = %v, want ErrOrderFinished: the order expired before it", err)
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Expired {
		t.Fatalf("stored status %s, want expired", got.Status)
	}
}

func TestPassivation_dropsNoRequest(t *testing.T) {
	const orders, workers, rounds = 20, 16, 150
	h := newHarness(t, nil, func(c *actors.Config) {
		c.FinishedIdle = time.Millisecond // finished orders leave memory all the time
		c.RequestTimeout = 5 * time.Second
	})
	var reqs []actors.CallbackRequest
	for range orders {
		o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}})
		req := actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}
		if _, err := h.callback(req); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				out, err := h.callback(reqs[(w+i)%orders])
				if err == nil && !out.Duplicate {
					err = errors.New("a repeated callback was applied again")
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n == 0 {
			t.Errorf("first failure: %v", err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d repeated callbacks to passivating orders failed", n, workers*rounds)
	}
}
