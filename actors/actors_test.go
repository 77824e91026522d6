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
	"github.com/fanflow/fanflow/token"
)

func TestOrder_completesWhenEveryJobCallsBack(t *testing.T) {
	h := newHarness(t, nil)
	o := h.submit(t, actors.SubmitRequest{})
	if o.Status != order.Running || len(o.Jobs) != 3 || o.Version != 1 {
		t.Fatalf("created order = %+v", o)
	}
	for range o.Jobs {
		c := h.caller.next(t)
		if c.OrderID != o.OrderID || c.Attempt != 1 {
			t.Fatalf("callout = %+v", c)
		}
	}
	for i, j := range o.Jobs {
		out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID, Result: json.RawMessage(`{"n":1}`)})
		if err != nil {
			t.Fatalf("callback %d: %v", i, err)
		}
		want := order.Running
		if i == len(o.Jobs)-1 {
			want = order.Completed
		}
		if out.JobStatus != order.JobCompleted || out.OrderStatus != want || out.Duplicate {
			t.Fatalf("callback %d outcome = %+v, want job completed, order %s", i, out, want)
		}
	}
	if s := h.obs.waitFinished(t); s != order.Completed {
		t.Fatalf("finished as %s", s)
	}
	got := h.stored(t, o.OrderID)
	if got.Status != order.Completed || got.CompletedAt == nil {
		t.Fatalf("stored order = %+v", got)
	}
	for _, j := range got.Jobs {
		if j.Status != order.JobCompleted || string(j.Result) != `{"n":1}` {
			t.Errorf("job %s = %+v", j.JobID, j)
		}
	}
}

func TestCallback_concurrentCopiesTransitionEachJobOnce(t *testing.T) {
	const copies = 50
	h := newHarness(t, nil)
	o := h.submit(t, actors.SubmitRequest{})
	for range o.Jobs {
		h.caller.next(t)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firsts   = map[string]int{}
		dups     = map[string]int{}
		failures []error
	)
	for _, j := range o.Jobs {
		for range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					failures = append(failures, err)
				case out.Duplicate:
					dups[j.JobID]++
				default:
					firsts[j.JobID]++
				}
			}()
		}
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d callbacks failed, first: %v", len(failures), failures[0])
	}
	for _, j := range o.Jobs {
		if firsts[j.JobID] != 1 || dups[j.JobID] != copies-1 {
			t.Errorf("job %s: %d transitions and %d duplicates, want 1 and %d", j.JobID, firsts[j.JobID], dups[j.JobID], copies-1)
		}
	}
	if s := h.obs.waitFinished(t); s != order.Completed {
		t.Fatalf("finished as %s", s)
	}
	if n := h.obs.count(order.Completed); n != 1 {
		t.Fatalf("order completed %d times", n)
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Completed {
		t.Fatalf("stored status %s", got.Status)
	}
}

func TestCallback_beforeCalloutIsAcceptedCounts(t *testing.T) {
	release := make(chan struct{})
	caller := newFakeCaller(func(actors.Callout) (bool, error) {
		<-release // the job service is slow to answer 202
		return false, nil
	})
	h := newHarness(t, caller)
	defer close(release)
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}})
	h.caller.next(t)
	out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID})
	if err != nil || out.OrderStatus != order.Completed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
}

func TestCallback_errorsNameTheProblemAndChangeNothing(t *testing.T) {
	h := newHarness(t, nil)
	o := h.submit(t, actors.SubmitRequest{})
	cases := []struct {
		name string
		req  actors.CallbackRequest
		want error
	}{
		{"unknown order", actors.CallbackRequest{OrderID: actors.NewID(), JobID: o.Jobs[0].JobID}, actors.ErrNotFound},
		{"job not in order", actors.CallbackRequest{OrderID: o.OrderID, JobID: actors.NewID()}, order.ErrUnknownJob},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.callback(c.req)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if got := h.stored(t, o.OrderID); got.Version != 1 {
		// Callout acceptances may have moved the version on; what must not
		// have happened is any job finishing.
		for _, j := range got.Jobs {
			if j.Status.Done() {
				t.Fatalf("job %s became %s", j.JobID, j.Status)
			}
		}
	}
}

func TestSubmit_rejectsUnknownJobTypeAndStoresNothing(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := h.client.Submit(ctx, actors.SubmitRequest{Parameters: json.RawMessage(`{}`), Jobs: []string{"BatchJobA", "NoSuchJob"}})
	var fe *actors.FieldError
	if !errors.As(err, &fe) || fe.Field != "jobs[1]" || !strings.Contains(fe.Msg, "NoSuchJob") {
		t.Fatalf("err = %v, want a FieldError on jobs[1] naming NoSuchJob", err)
	}
	page, err := h.store.List(ctx, persistence.Query{})
	if err != nil || len(page.Records) != 0 {
		t.Fatalf("store holds %d orders (err %v)", len(page.Records), err)
	}
}

func TestCallout_retryableFailureIsRetriedThenProceeds(t *testing.T) {
	var mu sync.Mutex
	failed := map[string]bool{}
	caller := newFakeCaller(func(c actors.Callout) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if !failed[c.JobID] {
			failed[c.JobID] = true
			return true, errors.New("POST: HTTP 500: busy")
		}
		return false, nil
	})
	h := newHarness(t, caller)
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobB"}})
	got := h.waitStored(t, o.OrderID, "processing after a retry", func(o order.Order) bool {
		return o.Jobs[0].Status == order.JobProcessing
	})
	if got.Jobs[0].Attempts != 2 {
		t.Fatalf("attempts = %d, want 2", got.Jobs[0].Attempts)
	}
	if out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil || out.OrderStatus != order.Completed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
}

func TestCallout_rejectionFailsJobAndOrder(t *testing.T) {
	caller := newFakeCaller(func(c actors.Callout) (bool, error) {
		if c.Endpoint == "/v1/batchJobA" {
			return false, errors.New("POST /v1/batchJobA: HTTP 400: bad job")
		}
		return false, nil
	})
	h := newHarness(t, caller)
	o := h.submit(t, actors.SubmitRequest{})
	if s := h.obs.waitFinished(t); s != order.Failed {
		t.Fatalf("finished as %s, want failed", s)
	}
	got := h.stored(t, o.OrderID)
	if got.Status != order.Failed || got.Error == nil || got.Error.Code != "job_failed" {
		t.Fatalf("stored order = %+v", got)
	}
	var a order.Job
	for _, j := range got.Jobs {
		if j.Type == "BatchJobA" {
			a = j
		}
	}
	if a.Status != order.JobFailed || !strings.Contains(string(a.Error), "HTTP 400") {
		t.Fatalf("job A = %+v, want failed with the HTTP 400 error", a)
	}
}

func TestCallout_retriesExhaustedFailOrder(t *testing.T) {
	caller := newFakeCaller(func(actors.Callout) (bool, error) { return true, errors.New("connection refused") })
	h := newHarness(t, caller)
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobC"}})
	if s := h.obs.waitFinished(t); s != order.Failed {
		t.Fatalf("finished as %s", s)
	}
	if got := h.stored(t, o.OrderID); got.Jobs[0].Attempts != 3 || got.Jobs[0].Status != order.JobFailed {
		t.Fatalf("job = %+v, want failed after 3 attempts", got.Jobs[0])
	}
}

func TestDeadline_expiresOrderAndRefusesLateCallback(t *testing.T) {
	h := newHarness(t, nil)
	o := h.submit(t, actors.SubmitRequest{Deadline: 200 * time.Millisecond})
	if s := h.obs.waitFinished(t); s != order.Expired {
		t.Fatalf("finished as %s, want expired", s)
	}
	_, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[1].JobID, Result: json.RawMessage(`"late"`)})
	if !errors.Is(err, order.ErrOrderFinished) {
		t.Fatalf("late callback err = %v, want ErrOrderFinished", err)
	}
	got := h.stored(t, o.OrderID)
	if got.Status != order.Expired {
		t.Fatalf("status %s", got.Status)
	}
	late := got.Jobs[1].LateCallback
	if late == nil || string(late.Result) != `"late"` || got.Jobs[1].Status.Done() {
		t.Fatalf("job = %+v, want the late callback recorded and the job not done", got.Jobs[1])
	}
}

func TestCallback_tokenIsRequiredWhenSigning(t *testing.T) {
	signer, err := token.New([]byte("a-test-secret-of-32-bytes-length"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil, func(c *actors.Config) { c.Tokens = signer })
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}})
	c := h.caller.next(t)
	if c.Token != signer.Token(o.OrderID, o.Jobs[0].JobID) {
		t.Fatalf("callout token %q is not the job's token", c.Token)
	}
	for _, tok := range []string{"", "forged", signer.Token(o.OrderID, "other-job")} {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID, Token: tok}); !errors.Is(err, actors.ErrUnauthorized) {
			t.Fatalf("token %q: err = %v, want ErrUnauthorized", tok, err)
		}
	}
	if got := h.stored(t, o.OrderID); got.Jobs[0].Status.Done() {
		t.Fatal("an unauthorized callback changed the job")
	}
	if out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID, Token: c.Token}); err != nil || out.OrderStatus != order.Completed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
}

func TestStoreDown_createIsRefusedAndNothingExists(t *testing.T) {
	h := newHarness(t, nil)
	h.saver.fail(true)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := h.client.Submit(ctx, actors.SubmitRequest{Parameters: json.RawMessage(`{}`)})
	if !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	select {
	case c := <-h.caller.calls:
		t.Fatalf("callout %+v sent for an order that was never stored", c)
	default:
	}
	if page, err := h.store.List(ctx, persistence.Query{}); err != nil || len(page.Records) != 0 {
		t.Fatalf("store holds %d orders (err %v)", len(page.Records), err)
	}
}

func TestStoreDown_callbackIsRefusedThenAppliedWhenStoreReturns(t *testing.T) {
	h := newHarness(t, nil)
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA", "BatchJobB"}})
	for range o.Jobs {
		h.caller.next(t)
	}
	h.waitStored(t, o.OrderID, "processing", func(o order.Order) bool {
		return o.Jobs[0].Status == order.JobProcessing && o.Jobs[1].Status == order.JobProcessing
	})
	req := actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}
	h.saver.fail(true)
	if _, err := h.callback(req); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if got := h.stored(t, o.OrderID); got.Jobs[0].Status != order.JobProcessing {
		t.Fatalf("job stored as %s after a refused callback", got.Jobs[0].Status)
	}
	h.saver.fail(false)
	// Had memory run ahead of the store, this retry would be a duplicate.
	out, err := h.callback(req)
	if err != nil || out.Duplicate || out.JobStatus != order.JobCompleted {
		t.Fatalf("retried callback: outcome %+v, err %v; want a first, applied transition", out, err)
	}
	if got := h.stored(t, o.OrderID); got.Jobs[0].Status != order.JobCompleted {
		t.Fatalf("job stored as %s", got.Jobs[0].Status)
	}
}

// storeRunning writes a running order straight into the store, as a previous
// process would have left it, and returns it.
func storeRunning(t *testing.T, h *harness, deadline time.Time, accepted int) order.Order {
	t.Helper()
	m := order.New(order.Policy{})
	now := time.Now()
	jobs := make([]order.NewJob, 3)
	for i, spec := range order.DefaultJobs() {
		jobs[i] = order.NewJob{JobID: actors.NewID(), Spec: spec}
	}
	id := actors.NewID()
	if _, err := m.Step(order.Created{At: now.Add(-time.Second), OrderID: id, Parameters: json.RawMessage(`{}`), Jobs: jobs, Deadline: deadline}); err != nil {
		t.Fatal(err)
	}
	for i := range accepted {
		if _, err := m.Step(order.CalloutAccepted{At: now, JobID: jobs[i].JobID, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := json.Marshal(m.View())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.Save(context.Background(), []persistence.Record{persistence.RecordOf(m.View(), data, 0)}); err != nil {
		t.Fatal(err)
	}
	return m.Snapshot()
}

func TestActivate_resendsUnacknowledgedCalloutsOnly(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(time.Hour), 1)
	h.client.Activate(o.OrderID)
	c := h.caller.next(t)
	d := h.caller.next(t)
	resent := map[string]int{c.JobID: c.Attempt, d.JobID: d.Attempt}
	if _, ok := resent[o.Jobs[0].JobID]; ok {
		t.Fatalf("accepted job %s was called again", o.Jobs[0].JobID)
	}
	for _, j := range o.Jobs[1:] {
		if resent[j.JobID] != 2 {
			t.Fatalf("job %s resent as attempt %d, want 2 (all: %v)", j.JobID, resent[j.JobID], resent)
		}
	}
	for _, j := range o.Jobs {
		if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Completed {
		t.Fatalf("status %s", got.Status)
	}
}

func TestActivate_pastDeadlineExpiresAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(-time.Millisecond), 3)
	h.client.Activate(o.OrderID)
	if s := h.obs.waitFinished(t); s != order.Expired {
		t.Fatalf("finished as %s", s)
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Expired {
		t.Fatalf("stored status %s", got.Status)
	}
}

func TestCallback_activatesOrderNotInMemory(t *testing.T) {
	h := newHarness(t, nil)
	o := storeRunning(t, h, time.Now().Add(time.Hour), 3)
	for i, j := range o.Jobs {
		out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID})
		if err != nil || out.Duplicate {
			t.Fatalf("callback %d: outcome %+v, err %v", i, out, err)
		}
	}
	if got := h.stored(t, o.OrderID); got.Status != order.Completed {
		t.Fatalf("status %s", got.Status)
	}
	select {
	case c := <-h.caller.calls:
		t.Fatalf("accepted job called again: %+v", c)
	default:
	}
}

func TestCallback_finishedOrderLeftMemoryAnswersFromStore(t *testing.T) {
	h := newHarness(t, nil, func(c *actors.Config) { c.FinishedIdle = time.Millisecond })
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}})
	req := actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}
	if _, err := h.callback(req); err != nil {
		t.Fatal(err)
	}
	// Whether the actor is still there or has left, a repeat is a duplicate.
	for i := range 20 {
		out, err := h.callback(req)
		if err != nil || !out.Duplicate {
			t.Fatalf("repeat %d: outcome %+v, err %v", i, out, err)
		}
	}
}

// countingLoader counts the loads that reach the store.
type countingLoader struct {
	actors.Loader
	mu    sync.Mutex
	loads int
}

func (c *countingLoader) Load(ctx context.Context, id string) (persistence.Record, error) {
	c.mu.Lock()
	c.loads++
	c.mu.Unlock()
	return c.Loader.Load(ctx, id)
}

func (c *countingLoader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads
}

func TestGet_servesOrdersInMemoryWithoutTheStore(t *testing.T) {
	var loader *countingLoader
	h := newHarness(t, nil, func(c *actors.Config) { loader = &countingLoader{Loader: c.Loader}; c.Loader = loader })
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}})
	out, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID})
	if err != nil || out.OrderStatus != order.Completed {
		t.Fatalf("outcome %+v, err %v", out, err)
	}
	data, err := h.client.Get(context.Background(), o.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, data); got.Status != order.Completed {
		t.Fatalf("read status %s right after the acknowledged completion", got.Status)
	}
	if n := loader.count(); n != 0 {
		t.Fatalf("%d loads reached the store for an order in memory", n)
	}
	if _, err := h.client.Get(context.Background(), actors.NewID()); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("unknown order: err = %v", err)
	}
	if n := loader.count(); n != 1 {
		t.Fatalf("an order not in memory made %d loads, want 1", n)
	}
}
