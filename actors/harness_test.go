package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// fakeCaller stands in for the job services: it records every callout and
// answers with respond (default: accepted).
type fakeCaller struct {
	calls   chan actors.Callout
	respond func(actors.Callout) (bool, error)
}

func newFakeCaller(respond func(actors.Callout) (bool, error)) *fakeCaller {
	return &fakeCaller{calls: make(chan actors.Callout, 10000), respond: respond}
}

func (f *fakeCaller) Call(_ context.Context, c actors.Callout) (bool, error) {
	f.calls <- c
	if f.respond != nil {
		return f.respond(c)
	}
	return false, nil
}

// next returns the next callout, failing the test if none comes.
func (f *fakeCaller) next(t *testing.T) actors.Callout {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(testTimeout):
		t.Fatal("no callout within the test timeout")
		return actors.Callout{}
	}
}

// observer counts started orders and finished ones by status.
type observer struct {
	mu       sync.Mutex
	started  int
	finished map[order.Status]int
	done     chan order.Status
}

func newObserver() *observer {
	return &observer{finished: map[order.Status]int{}, done: make(chan order.Status, 10000)}
}

func (o *observer) OrderStarted() { o.mu.Lock(); o.started++; o.mu.Unlock() }

func (o *observer) startedCount() int { o.mu.Lock(); defer o.mu.Unlock(); return o.started }

func (o *observer) OrderFinished(s order.Status, _ time.Duration) {
	o.mu.Lock()
	o.finished[s]++
	o.mu.Unlock()
	o.done <- s
}
func (o *observer) SnapshotStored()  {}
func (o *observer) CalloutDone(bool) {}

func (o *observer) count(s order.Status) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.finished[s]
}

// waitFinished waits for the next order to finish and returns its status.
func (o *observer) waitFinished(t *testing.T) order.Status {
	t.Helper()
	select {
	case s := <-o.done:
		return s
	case <-time.After(testTimeout):
		t.Fatal("no order finished within the test timeout")
		return 0
	}
}

// switchSaver writes through a real Committer unless failing is set, in
// which case every write fails as if the store were down.
type switchSaver struct {
	inner   actors.Saver
	mu      sync.Mutex
	failing bool
	refused int // writes failed so far
}

func (s *switchSaver) fail(on bool) { s.mu.Lock(); s.failing = on; s.mu.Unlock() }

func (s *switchSaver) refusedCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refused }

func (s *switchSaver) Enqueue(r persistence.Record, done func(error)) {
	s.mu.Lock()
	failing := s.failing
	if failing {
		s.refused++
	}
	s.mu.Unlock()
	if failing {
		done(persistence.ErrUnavailable)
		return
	}
	s.inner.Enqueue(r, done)
}

type harness struct {
	client *actors.Client
	store  *memory.Store
	saver  *switchSaver
	caller *fakeCaller
	obs    *observer
}

type option func(*actors.Config)

func newHarness(t *testing.T, caller *fakeCaller, opts ...option) *harness {
	t.Helper()
	store := memory.New()
	committer := persistence.NewCommitter(store, persistence.CommitOptions{})
	saver := &switchSaver{inner: committer}
	if caller == nil {
		caller = newFakeCaller(nil)
	}
	cfg := actors.Config{
		Loader: store,
		Saver:  saver,
		Claims: store,
		Caller: caller,
		Policy: order.Policy{MaxAttempts: 3, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond},
	}
	for _, o := range opts {
		o(&cfg)
	}
	obs := newObserver()
	client, err := actors.New(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := committer.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &harness{client: client, store: store, saver: saver, caller: caller, obs: obs}
}

func (h *harness) submit(t *testing.T, req actors.SubmitRequest) order.Order {
	t.Helper()
	if req.Parameters == nil {
		req.Parameters = json.RawMessage(`{"customer":"c-1"}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data, err := h.client.Submit(ctx, req)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return decode(t, data)
}

func (h *harness) callback(req actors.CallbackRequest) (order.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return h.client.Callback(ctx, req)
}

// stored returns the order as the store has it.
func (h *harness) stored(t *testing.T, id string) order.Order {
	t.Helper()
	rec, err := h.store.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return decode(t, rec.Data)
}

// waitStored polls the store until cond holds for the order, or fails.
func (h *harness) waitStored(t *testing.T, id string, what string, cond func(order.Order) bool) order.Order {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		rec, err := h.store.Load(context.Background(), id)
		if err == nil {
			if o := decode(t, rec.Data); cond(o) {
				return o
			}
		} else if !errors.Is(err, persistence.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: never %s", id, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func decode(t *testing.T, data []byte) order.Order {
	t.Helper()
	var o order.Order
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatalf("decode order: %v\n%s", err, data)
	}
	return o
}
