package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// fakeStore hands every Save batch to the test through saved and answers
// with what save returns. Only Save is used by the Committer.
type fakeStore struct {
	persistence.Store // nil: other methods panic
	saved             chan []persistence.Record
	save              func(ctx context.Context, batch []persistence.Record) error
}

func newFake(save func(context.Context, []persistence.Record) error) *fakeStore {
	return &fakeStore{saved: make(chan []persistence.Record, 1000), save: save}
}

func (f *fakeStore) Save(ctx context.Context, batch []persistence.Record) error {
	f.saved <- slices.Clone(batch)
	if f.save == nil {
		return nil
	}
	return f.save(ctx, batch)
}

// gate makes a fake whose first Save blocks until release is called, so a
// test can fill the queue behind a batch in flight.
func gate() (f *fakeStore, release func(), then func(func(context.Context, []persistence.Record) error)) {
	open := make(chan struct{})
	var mu sync.Mutex
	var next func(context.Context, []persistence.Record) error
	calls := 0
	f = newFake(func(ctx context.Context, b []persistence.Record) error {
		mu.Lock()
		calls++
		first, fn := calls == 1, next
		mu.Unlock()
		if first {
			<-open
			return nil
		}
		if fn != nil {
			return fn(ctx, b)
		}
		return nil
	})
	return f, func() { close(open) }, func(fn func(context.Context, []persistence.Record) error) {
		mu.Lock()
		next = fn
		mu.Unlock()
	}
}

func rec(id string, version uint64) persistence.Record {
	return persistence.Record{OrderID: id, Version: version, Status: order.Running, Data: []byte(fmt.Sprintf(`{"orderId":%q,"version":%d}`, id, version))}
}

func nextBatch(t *testing.T, f *fakeStore) []persistence.Record {
	t.Helper()
	select {
	case b := <-f.saved:
		return b
	case <-time.After(testTimeout):
		t.Fatal("no Save within the test timeout")
		return nil
	}
}

// result collects one callback's outcome.
type result chan error

func newResult() result { return make(result, 2) }

func (r result) done(err error) { r <- err }

func (r result) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r:
		return err
	case <-time.After(testTimeout):
		t.Fatal("callback not called within the test timeout")
		return nil
	}
}

func ids(b []persistence.Record) []string {
	var s []string
	for _, r := range b {
		s = append(s, fmt.Sprintf("%s@%d", r.OrderID, r.Version))
	}
	return s
}

func closeCommitter(t *testing.T, c *persistence.Committer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestCommitter_recordsQueuedDuringAWriteGoInOneBatch(t *testing.T) {
	f, release, _ := gate()
	c := newCommitter(t, f, persistence.CommitOptions{})
	first := newResult()
	c.Enqueue(rec("o-0", 1), first.done)
	if got := ids(nextBatch(t, f)); !slices.Equal(got, []string{"o-0@1"}) {
		t.Fatalf("first batch = %v", got)
	}
	var rs []result
	var want []string
	for i := 1; i <= 10; i++ {
		r := newResult()
		rs = append(rs, r)
		c.Enqueue(rec(fmt.Sprintf("o-%d", i), 1), r.done)
		want = append(want, fmt.Sprintf("o-%d@1", i))
	}
	release()
	if err := first.wait(t); err != nil {
		t.Errorf("first callback: %v", err)
	}
	if got := ids(nextBatch(t, f)); !slices.Equal(got, want) {
		t.Errorf("second batch = %v, want %v", got, want)
	}
	for i, r := range rs {
		if err := r.wait(t); err != nil {
			t.Errorf("callback %d: %v", i, err)
		}
	}
	if st := c.Stats(); st != (persistence.CommitStats{Batches: 2, Records: 11}) {
		t.Errorf("Stats = %+v, want 2 batches, 11 records", st)
	}
}

// newCommitter makes a committer closed at the end of the test.
func newCommitter(t *testing.T, s persistence.Store, opts persistence.CommitOptions) *persistence.Committer {
	c := persistence.NewCommitter(s, opts)
	t.Cleanup(func() { closeCommitter(t, c) })
	return c
}

func TestCommitter_defaultMaxBatchIs256(t *testing.T) {
	f, release, _ := gate()
	c := newCommitter(t, f, persistence.CommitOptions{})
	c.Enqueue(rec("first", 1), nil)
	nextBatch(t, f)
	for i := range 300 {
		c.Enqueue(rec(fmt.Sprintf("o-%d", i), 1), nil)
	}
	release()
	if n := len(nextBatch(t, f)); n != 256 {
		t.Errorf("batch of %d, want 256", n)
	}
	if n := len(nextBatch(t, f)); n != 44 {
		t.Errorf("batch of %d, want the 44 left", n)
	}
}

func TestCommitter_fullBatchDoesNotWaitForMaxDelay(t *testing.T) {
	f := newFake(nil)
	c := newCommitter(t, f, persistence.CommitOptions{MaxBatch: 4, MaxDelay: time.Hour})
	for i := range 4 {
		c.Enqueue(rec(fmt.Sprintf("o-%d", i), 1), nil)
	}
	if n := len(nextBatch(t, f)); n != 4 {
		t.Errorf("batch of %d, want 4", n)
	}
}

func TestCommitter_waitsMaxDelayForMoreRecords(t *testing.T) {
	const delay = 50 * time.Millisecond
	f := newFake(nil)
	c := newCommitter(t, f, persistence.CommitOptions{MaxDelay: delay})
	start := time.Now()
	c.Enqueue(rec("o-1", 1), nil)
	c.Enqueue(rec("o-2", 1), nil)
	b := nextBatch(t, f)
	if waited := time.Since(start); waited < delay {
		t.Errorf("batch written after %v, before MaxDelay %v", waited, delay)
	}
	if got := ids(b); !slices.Equal(got, []string{"o-1@1", "o-2@1"}) {
		t.Errorf("batch = %v, want both records", got)
	}
}

func TestCommitter_negativeMaxDelayWritesAtOnce(t *testing.T) {
	f := newFake(nil)
	c := newCommitter(t, f, persistence.CommitOptions{MaxDelay: -1})
	start := time.Now()
	c.Enqueue(rec("o-1", 1), nil)
	nextBatch(t, f)
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("batch written after %v", waited)
	}
}

func TestCommitter_newerSnapshotSupersedesQueuedOne(t *testing.T) {
	for _, tc := range []struct {
		name     string
		versions []uint64 // enqueued in this order behind a blocked batch
		outcome  error
		want     string
		wantErr  error
	}{
		{"newer replaces older", []uint64{1, 2, 3}, nil, "o-a@3", nil},
		{"older never replaces newer", []uint64{3, 2, 1}, nil, "o-a@3", nil},
		{"stale outcome goes to all", []uint64{1, 2}, &persistence.StaleError{OrderIDs: []string{"o-a"}}, "o-a@2", persistence.ErrStale},
		{"failure goes to all", []uint64{1, 2}, persistence.ErrUnavailable, "o-a@2", persistence.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, release, then := gate()
			then(func(context.Context, []persistence.Record) error { return tc.outcome })
			c := newCommitter(t, f, persistence.CommitOptions{})
			c.Enqueue(rec("o-blocker", 1), nil)
			nextBatch(t, f)
			var rs []result
			for _, v := range tc.versions {
				r := newResult()
				rs = append(rs, r)
				c.Enqueue(rec("o-a", v), r.done)
			}
			release()
			if got := ids(nextBatch(t, f)); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("batch = %v, want [%s]", got, tc.want)
			}
			for i, r := range rs {
				if err := r.wait(t); !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
					t.Errorf("callback %d: %v, want %v", i, err, tc.wantErr)
				}
			}
			if st := c.Stats(); st.Superseded != uint64(len(tc.versions)-1) {
				t.Errorf("Superseded = %d, want %d", st.Superseded, len(tc.versions)-1)
			}
		})
	}
}

func TestCommitter_recordInFlightIsNotSuperseded(t *testing.T) {
	f, release, _ := gate()
	c := newCommitter(t, f, persistence.CommitOptions{})
	c.Enqueue(rec("o-a", 1), nil)
	nextBatch(t, f)
	c.Enqueue(rec("o-a", 2), nil)
	release()
	if got := ids(nextBatch(t, f)); !slices.Equal(got, []string{"o-a@2"}) {
		t.Errorf("second batch = %v, want [o-a@2]", got)
	}
}

func TestCommitter_staleErrorOnlyForStaleOrders(t *testing.T) {
	f, release, then := gate()
	then(func(context.Context, []persistence.Record) error {
		return &persistence.StaleError{OrderIDs: []string{"o-b"}}
	})
	c := newCommitter(t, f, persistence.CommitOptions{})
	c.Enqueue(rec("o-blocker", 1), nil)
	nextBatch(t, f)
	res := map[string]result{}
	for _, id := range []string{"o-a", "o-b", "o-c"} {
		res[id] = newResult()
		c.Enqueue(rec(id, 1), res[id].done)
	}
	release()
	for id, r := range res {
		err := r.wait(t)
		var se *persistence.StaleError
		switch {
		case id != "o-b" && err != nil:
			t.Errorf("%s: %v, want nil", id, err)
		case id == "o-b" && (!errors.As(err, &se) || !slices.Equal(se.OrderIDs, []string{"o-b"})):
			t.Errorf("%s: %v, want a StaleError naming it", id, err)
		}
	}
}

func TestCommitter_writeErrorGoesToEveryCallbackWithItsOrder(t *testing.T) {
	boom := fmt.Errorf("disk on fire: %w", persistence.ErrUnavailable)
	f := newFake(func(context.Context, []persistence.Record) error { return boom })
	c := newCommitter(t, f, persistence.CommitOptions{MaxDelay: time.Hour, MaxBatch: 3})
	res := map[string]result{}
	for _, id := range []string{"o-a", "o-b", "o-c"} {
		res[id] = newResult()
		c.Enqueue(rec(id, 1), res[id].done)
	}
	for id, r := range res {
		if err := r.wait(t); !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), id) {
			t.Errorf("%s: %v, want ErrUnavailable naming the order", id, err)
		}
	}
}

func TestCommitter_timeoutBoundsEachWrite(t *testing.T) {
	f := newFake(func(ctx context.Context, _ []persistence.Record) error {
		<-ctx.Done()
		return ctx.Err()
	})
	c := newCommitter(t, f, persistence.CommitOptions{Timeout: 20 * time.Millisecond})
	r := newResult()
	c.Enqueue(rec("o-a", 1), r.done)
	if err := r.wait(t); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("callback: %v, want DeadlineExceeded", err)
	}
}

func TestCommitter_closeFlushesTheQueue(t *testing.T) {
	f := newFake(nil)
	c := persistence.NewCommitter(f, persistence.CommitOptions{MaxDelay: time.Hour})
	var mu sync.Mutex
	var outcomes []error
	for i := range 5 {
		c.Enqueue(rec(fmt.Sprintf("o-%d", i), 1), func(err error) {
			mu.Lock()
			outcomes = append(outcomes, err)
			mu.Unlock()
		})
	}
	closeCommitter(t, c)
	mu.Lock()
	if len(outcomes) != 5 || slices.ContainsFunc(outcomes, func(err error) bool { return err != nil }) {
		t.Errorf("outcomes when Close returned: %v, want 5 nils", outcomes)
	}
	mu.Unlock()

	var after error
	c.Enqueue(rec("o-late", 1), func(err error) { after = err })
	if !errors.Is(after, persistence.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", after)
	}
	closeCommitter(t, c) // twice is fine
}

func TestCommitter_closeReturnsWhenItsContextEnds(t *testing.T) {
	f, release, _ := gate()
	c := persistence.NewCommitter(f, persistence.CommitOptions{})
	r := newResult()
	c.Enqueue(rec("o-a", 1), r.done)
	nextBatch(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a stuck write: %v, want context.Canceled", err)
	}
	release()
	if err := r.wait(t); err != nil {
		t.Errorf("callback after the write finished: %v", err)
	}
	closeCommitter(t, c)
}

func TestCommitter_concurrentWritersReachTheirLastVersion(t *testing.T) {
	store := memory.New()
	defer store.Close()
	c := persistence.NewCommitter(store, persistence.CommitOptions{MaxBatch: 16})
	const writers, versions = 16, 100
	var wg, callbacks sync.WaitGroup
	callbacks.Add(writers * versions)
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("o-%d", w)
			for v := uint64(1); v <= versions; v++ {
				c.Enqueue(rec(id, v), func(err error) {
					if err != nil {
						t.Errorf("%s v%d: %v", id, v, err)
					}
					callbacks.Done()
				})
				_ = c.Stats()
			}
		})
	}
	wg.Wait()
	closeCommitter(t, c)
	all := make(chan struct{})
	go func() { callbacks.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(testTimeout):
		t.Fatal("callbacks still missing after Close returned")
	}
	for w := range writers {
		r, err := store.Load(t.Context(), fmt.Sprintf("o-%d", w))
		if err != nil || r.Version != versions {
			t.Errorf("o-%d: v%d, %v; want v%d", w, r.Version, err, versions)
		}
	}
	st := c.Stats()
	if st.Records+st.Superseded != writers*versions {
		t.Errorf("Stats %+v: records+superseded = %d, want %d", st, st.Records+st.Superseded, writers*versions)
	}
	if st.Batches == 0 || st.Records > st.Batches*16 {
		t.Errorf("Stats %+v: batches exceed MaxBatch 16", st)
	}
}

func TestCommitter_reportsEachBatchToOnBatch(t *testing.T) {
	type batch struct {
		size int
		err  error
	}
	got := make(chan batch, 10)
	store := memory.New()
	c := persistence.NewCommitter(store, persistence.CommitOptions{OnBatch: func(size int, took time.Duration, err error) {
		if took < 0 {
			t.Errorf("negative duration %v", took)
		}
		got <- batch{size, err}
	}})
	done := make(chan error, 1)
	c.Enqueue(rec("o-onbatch", 1), func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b := <-got
	if b.size != 1 || b.err != nil {
		t.Fatalf("OnBatch got %+v, want one record and no error", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
