package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
)

// withCancelEndpoints gives every default job type a cancel endpoint.
func withCancelEndpoints(c *actors.Config) {
	c.Jobs = order.DefaultJobs()
	for i := range c.Jobs {
		c.Jobs[i].CancelEndpoint = c.Jobs[i].Endpoint + "/cancel"
	}
}

// fakePoster records webhook deliveries.
type fakePoster struct {
	mu     sync.Mutex
	bodies map[string][][]byte
	fail   bool
}

func (p *fakePoster) Post(_ context.Context, url string, body []byte) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bodies == nil {
		p.bodies = map[string][][]byte{}
	}
	p.bodies[url] = append(p.bodies[url], append([]byte(nil), body...))
	if p.fail {
		return false, errors.New("HTTP 410: gone")
	}
	return false, nil
}

func (p *fakePoster) sent(url string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bodies[url]
}

func TestCancel_compensatesEachAcceptedUncompletedJobOnce(t *testing.T) {
	h := newHarness(t, nil, withCancelEndpoints)
	o := h.submit(t, actors.SubmitRequest{})
	for range o.Jobs {
		h.caller.next(t)
	}
	h.waitStored(t, o.OrderID, "all processing", func(o order.Order) bool {
		pending, _ := order.Tally(o.Jobs)
		return pending == 3 && o.Jobs[0].Status == order.JobProcessing && o.Jobs[1].Status == order.JobProcessing && o.Jobs[2].Status == order.JobProcessing
	})
	if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data, err := h.client.Cancel(ctx, o.OrderID, "no longer needed")
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Status != order.Cancelled || got.Error == nil || !strings.Contains(got.Error.Message, "no longer needed") {
		t.Fatalf("cancel answered %+v", got)
	}
	got := h.waitStored(t, o.OrderID, "compensated", func(o order.Order) bool {
		for _, j := range o.Jobs[1:] {
			if j.Compensation == nil || j.Compensation.Status != order.DeliverySucceeded {
				return false
			}
		}
		return true
	})
	if got.Jobs[0].Compensation != nil {
		t.Fatalf("the completed job was compensated: %+v", got.Jobs[0].Compensation)
	}
	cancels := map[string]int{}
	for range 2 {
		c := h.caller.next(t)
		if !strings.HasSuffix(c.Endpoint, "/cancel") {
			t.Fatalf("unexpected callout %+v", c)
		}
		cancels[c.JobID]++
	}
	if cancels[o.Jobs[1].JobID] != 1 || cancels[o.Jobs[2].JobID] != 1 {
		t.Fatalf("cancel endpoint calls per job: %v", cancels)
	}
	if _, err := h.client.Cancel(ctx, o.OrderID, ""); !errors.Is(err, order.ErrOrderFinished) {
		t.Fatalf("second cancel: err = %v, want ErrOrderFinished", err)
	}
	select {
	case c := <-h.caller.calls:
		t.Fatalf("extra call after compensation: %+v", c)
	default:
	}
}

func TestRetry_redrivesOnlyTheFailedJobAndCompletes(t *testing.T) {
	var mu sync.Mutex
	rejected := false
	caller := newFakeCaller(func(c actors.Callout) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if c.Endpoint == "/v1/batchJobA" && !rejected {
			rejected = true
			return false, errors.New("HTTP 400: bad input")
		}
		return false, nil
	})
	h := newHarness(t, caller)
	o := h.submit(t, actors.SubmitRequest{})
	if s := h.obs.waitFinished(t); s != order.Failed {
		t.Fatalf("finished as %s", s)
	}
	for range 3 {
		h.caller.next(t)
	}
	// B and C were accepted; their 202s may be recorded after the failure.
	failed := h.waitStored(t, o.OrderID, "B and C accepted", func(o order.Order) bool {
		n := 0
		for _, j := range o.Jobs {
			if j.Status == order.JobProcessing {
				n++
			}
		}
		return n == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data, err := h.client.Retry(ctx, o.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Status != order.Running || got.Retries != 1 {
		t.Fatalf("retry answered %+v", got)
	}
	c := h.caller.next(t)
	if c.Endpoint != "/v1/batchJobA" || c.Attempt != 2 {
		t.Fatalf("re-driven callout %+v, want job A's attempt 2", c)
	}
	select {
	case extra := <-h.caller.calls:
		t.Fatalf("a job that did not fail was called again: %+v", extra)
	default:
	}
	for _, j := range failed.Jobs {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
			t.Fatalf("callback for %s: %v", j.Type, err)
		}
	}
	if s := h.obs.waitFinished(t); s != order.Completed {
		t.Fatalf("finished as %s after the retry", s)
	}
	if _, err := h.client.Retry(ctx, o.OrderID); !errors.Is(err, order.ErrNotRetryable) {
		t.Fatalf("retry of a completed order: err = %v, want ErrNotRetryable", err)
	}
}

func TestWebhook_receivesTheFinalOrderAndOutcomeIsRecorded(t *testing.T) {
	poster := &fakePoster{}
	h := newHarness(t, nil, func(c *actors.Config) { c.Poster = poster; c.NotifyURL = "http://hooks.test/global" })
	own := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}, NotifyURL: "http://hooks.test/own"})
	global := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobB"}})
	for _, o := range []order.Order{own, global} {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil {
			t.Fatal(err)
		}
	}
	for url, o := range map[string]order.Order{"http://hooks.test/own": own, "http://hooks.test/global": global} {
		got := h.waitStored(t, o.OrderID, "notified", func(o order.Order) bool {
			return o.Notification != nil && o.Notification.Status == order.DeliverySucceeded
		})
		sent := poster.sent(url)
		if len(sent) != 1 {
			t.Fatalf("%s got %d deliveries", url, len(sent))
		}
		var body order.Order
		if err := json.Unmarshal(sent[0], &body); err != nil {
			t.Fatal(err)
		}
		if body.OrderID != o.OrderID || body.Status != order.Completed {
			t.Fatalf("%s got %+v", url, body)
		}
		if got.Notification.Attempts != 1 {
			t.Fatalf("notification %+v", got.Notification)
		}
	}
}

func TestWebhook_finalRefusalIsRecorded(t *testing.T) {
	poster := &fakePoster{fail: true}
	h := newHarness(t, nil, func(c *actors.Config) { c.Poster = poster })
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobC"}, NotifyURL: "http://hooks.test/gone"})
	if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil {
		t.Fatal(err)
	}
	got := h.waitStored(t, o.OrderID, "notification failed", func(o order.Order) bool {
		return o.Notification != nil && o.Notification.Status == order.DeliveryFailed
	})
	if !strings.Contains(got.Notification.Error, "410") {
		t.Fatalf("notification %+v", got.Notification)
	}
}
