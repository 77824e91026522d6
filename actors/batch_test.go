package actors

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

const batchTestTimeout = 10 * time.Second

type acceptingCaller struct{}

func (acceptingCaller) Call(context.Context, Callout) (bool, error) { return false, nil }

// heldWrite is a snapshot write the test holds until it lets it through.
type heldWrite struct {
	rec  persistence.Record
	done func(error)
}

// holdingSaver passes writes to inner, or, while holding, hands them to
// the test instead.
type holdingSaver struct {
	inner Saver
	mu    sync.Mutex
	hold  bool
	held  chan heldWrite
}

func (s *holdingSaver) Enqueue(r persistence.Record, done func(error)) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold {
		s.held <- heldWrite{rec: r, done: done}
		return
	}
	s.inner.Enqueue(r, done)
}

func (s *holdingSaver) setHold(on bool) { s.mu.Lock(); s.hold = on; s.mu.Unlock() }

func (s *holdingSaver) next(t *testing.T) heldWrite {
	t.Helper()
	select {
	case w := <-s.held:
		return w
	case <-time.After(batchTestTimeout):
		t.Fatal("no snapshot write came")
		return heldWrite{}
	}
}

// heldClient is a Client of the internal tests: over a memory store, its
// writes through a group committer that a holdingSaver can hold.
type heldClient struct {
	*Client
	store     *memory.Store
	committer *persistence.Committer
	saver     *holdingSaver
}

// newHeldClient starts a heldClient for cfg, whose Loader and Saver it sets.
func newHeldClient(t *testing.T, cfg Config) heldClient {
	t.Helper()
	h := heldClient{store: memory.New()}
	h.committer = persistence.NewCommitter(h.store, persistence.CommitOptions{MaxDelay: -1})
	t.Cleanup(func() { _ = h.committer.Close(context.Background()) })
	h.saver = &holdingSaver{inner: h.committer, held: make(chan heldWrite, 16)}
	cfg.Loader, cfg.Saver = h.store, h.saver
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h.Client = c
	return h
}

// submit creates an order and returns it as its create was answered.
func (h heldClient) submit(t *testing.T) order.Order {
	t.Helper()
	data, err := h.Submit(context.Background(), SubmitRequest{Parameters: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var o order.Order
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOrderActor_stepsThatWaitedForOneWriteShareTheNext(t *testing.T) {
	h := newHeldClient(t, Config{Caller: acceptingCaller{}})
	c, store, saver := h.Client, h.store, h.saver
	stashed := make(chan struct{}, 16)
	c.rt.stashed = func() { stashed <- struct{}{} }

	ctx := context.Background()
	o := h.submit(t)
	// Wait until every callout is accepted and stored: the order only waits.
	deadline := time.Now().Add(batchTestTimeout)
	for {
		rec, err := store.Load(ctx, o.OrderID)
		if err == nil {
			var s order.Order
			if err := json.Unmarshal(rec.Data, &s); err != nil {
				t.Fatal(err)
			}
			if s.Jobs[0].Status == order.JobProcessing && s.Jobs[1].Status == order.JobProcessing && s.Jobs[2].Status == order.JobProcessing {
				o = s
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("callouts never all accepted")
		}
		time.Sleep(time.Millisecond)
	}

	for drained := false; !drained; { // stashes of the setup do not count
		select {
		case <-stashed:
		default:
			drained = true
		}
	}
	saver.setHold(true)
	type answer struct {
		job int
		err error
	}
	answers := make(chan answer, 3)
	callback := func(i int) {
		go func() {
			_, err := c.Callback(ctx, CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[i].JobID})
			answers <- answer{i, err}
		}()
	}
	callback(0)
	first := saver.next(t) // the first callback's snapshot, held
	callback(1)
	callback(2)
	for range 2 { // both wait in the actor's stash behind that write
		select {
		case <-stashed:
		case <-time.After(batchTestTimeout):
			t.Fatal("the other callbacks never reached the order")
		}
	}
	select {
	case a := <-answers:
		t.Fatalf("callback %d was answered (err %v) before any of them was stored", a.job, a.err)
	default:
	}
	first.done(nil) // as if stored
	second := saver.next(t)
	var s order.Order
	if err := json.Unmarshal(second.rec.Data, &s); err != nil {
		t.Fatal(err)
	}
	// Two steps, one version each, one write.
	if s.Version != first.rec.Version+2 || s.Status != order.Completed {
		t.Fatalf("second write: version %d status %s, want version %d (one write for both waiting callbacks) and completed",
			s.Version, s.Status, first.rec.Version+2)
	}
	got := 0
	for more := true; more; {
		select {
		case a := <-answers:
			if a.job != 0 {
				t.Fatalf("callback %d was answered before its write was stored", a.job)
			}
			if a.err != nil {
				t.Fatalf("callback 0: %v", a.err)
			}
			got++
		default:
			more = false
		}
	}
	saver.setHold(false)
	second.done(nil)
	for ; got < 3; got++ {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Fatalf("callback %d: %v", a.job, a.err)
			}
		case <-time.After(batchTestTimeout):
			t.Fatal("a callback was never answered")
		}
	}
	select {
	case w := <-saver.held:
		t.Fatalf("an extra write, version %d", w.rec.Version)
	default:
	}
}
