package actors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/persistence"
)

// benchStore is the smallest store the actors can run on: the latest
// snapshot of each order in a map. Writes are durable at once. The waiting
// benchmark measures its heap separately, to leave it out of the figure.
type benchStore struct {
	mu     sync.Mutex
	orders map[string]persistence.Record
	loads  atomic.Int64
	// reached counts the orders whose stored version reached reachVersion.
	reachVersion uint64
	reached      atomic.Int64
}

func newBenchStore() *benchStore { return &benchStore{orders: map[string]persistence.Record{}} }

func (s *benchStore) Enqueue(r persistence.Record, done func(error)) {
	s.mu.Lock()
	if old, ok := s.orders[r.OrderID]; ok && old.Version >= r.Version {
		s.mu.Unlock()
		done(&persistence.StaleError{OrderIDs: []string{r.OrderID}})
		return
	}
	old := s.orders[r.OrderID]
	r.Data = bytes.Clone(r.Data)
	s.orders[r.OrderID] = r
	s.mu.Unlock()
	if s.reachVersion > 0 && old.Version < s.reachVersion && r.Version >= s.reachVersion {
		s.reached.Add(1)
	}
	done(nil)
}

func (s *benchStore) Load(_ context.Context, id string) (persistence.Record, error) {
	s.loads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.orders[id]
	if !ok {
		return persistence.Record{}, fmt.Errorf("bench store: load %s: %w", id, persistence.ErrNotFound)
	}
	r.Data = bytes.Clone(r.Data)
	return r, nil
}

func (s *benchStore) List(context.Context, persistence.Query) (persistence.Page, error) {
	return persistence.Page{}, nil
}

// clone returns a deep copy of the store's map: as much heap as the store holds.
func (s *benchStore) clone() map[string]persistence.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]persistence.Record, len(s.orders))
	for k, r := range s.orders {
		r.Data = bytes.Clone(r.Data)
		c[k] = r
	}
	return c
}

// acceptingCaller accepts every callout and never calls back.
type acceptingCaller struct{ n atomic.Int64 }

func (c *acceptingCaller) Call(context.Context, actors.Callout) (bool, error) {
	c.n.Add(1)
	return false, nil
}

// waitingOrders is the number of orders BenchmarkWaitingOrders keeps
// waiting: FANFLOW_WAITING_ORDERS, default 50,000.
func waitingOrders(b *testing.B) int {
	if s := os.Getenv("FANFLOW_WAITING_ORDERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("FANFLOW_WAITING_ORDERS=%q: want a positive number", s)
		}
		return n
	}
	return 50_000
}

// BenchmarkWaitingOrders measures the heap each waiting order costs: N
// orders of three jobs are created, every callout is accepted, no callback
// ever comes. Once every order's accepted callouts are durable (and, with
// passivation, every order actor has left memory), it reports the heap in
// use per order, less what the store itself holds. Run it once per
// configuration: go test -run '^$' -bench WaitingOrders -benchtime 1x ./actors/
func BenchmarkWaitingOrders(b *testing.B) {
	for _, c := range []struct {
		name      string
		passivate time.Duration
	}{{"passivation=off", 0}, {"passivation=on", 50 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				waitingHeap(b, waitingOrders(b), c.passivate)
			}
		})
	}
}

func waitingHeap(b *testing.B, n int, passivate time.Duration) {
	b.Helper()
	const jobs = 3
	limit := time.Now().Add(time.Duration(n)*time.Millisecond + time.Minute) // bounds every wait below
	before := heapInUse()

	store, caller := newBenchStore(), &acceptingCaller{}
	// The creation and each job's acceptance are steps of one version each
	// (steps that wait for one write share the next, so count versions,
	// not writes).
	store.reachVersion = 1 + jobs
	client, err := actors.New(actors.Config{Loader: store, Saver: store, Caller: caller, PassivateAfter: passivate}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	params := json.RawMessage(`{"customer":"c-1"}`)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 2 * runtime.GOMAXPROCS(0) { // a bounded number of submitters
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.Submit(ctx, actors.SubmitRequest{Parameters: params}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every order's creation and acceptances are stored.
	for store.reached.Load() < int64(n) || caller.n.Load() < int64(n*jobs) || (passivate > 0 && client.Resident() > 0) {
		if time.Now().After(limit) {
			b.Fatalf("after %s: %d of %d callouts accepted, %d of %d orders stored with every acceptance, %d orders in memory",
				time.Since(limit.Add(-time.Minute)), caller.n.Load(), n*jobs, store.reached.Load(), n, client.Resident())
		}
		time.Sleep(10 * time.Millisecond)
	}
	after := heapInUse()
	if path := os.Getenv("FANFLOW_WAITING_HEAPPROFILE"); path != "" {
		writeHeapProfile(b, path)
	}
	copied := store.clone()
	withCopy := heapInUse()
	runtime.KeepAlive(copied)
	storeBytes := float64(withCopy - after)
	b.ReportMetric((float64(after-before)-storeBytes)/float64(n), "B/waiting-order")
	b.ReportMetric(storeBytes/float64(n), "store-B/order")
	b.ReportMetric(float64(client.Resident()), "resident-orders")
	runtime.KeepAlive(store)
}

// writeHeapProfile writes the heap profile as of the last collection to path
// (run with -memprofilerate 1 to see every allocation).
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
