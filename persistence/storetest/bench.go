package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// Bench measures snapshot writes per second on the stores newStore returns
// (a fresh one per run, closed by newStore's cleanup), with many concurrent
// writers that each wait for their snapshot to be durable before writing the
// next, as order actors do. Each writer walks its orders through six
// versions (five running, the last completed) of a ~1 KiB snapshot.
//
// Sub-benchmarks: the write path (one Save per snapshot; Committer with the
// default 1ms MaxDelay; Committer writing as soon as it is idle) times the
// number of writers. Besides ns/op they report snapshots/s and, for the
// Committer, records/batch.
func Bench(b *testing.B, newStore func(b *testing.B) persistence.Store) {
	paths := []struct {
		name string
		opts *persistence.CommitOptions // nil: Save per snapshot
	}{
		{"save-each", nil},
		{"committer-1ms", &persistence.CommitOptions{}},
		{"committer-eager", &persistence.CommitOptions{MaxDelay: -1}},
	}
	for _, p := range paths {
		for _, writers := range []int{16, 256} {
			b.Run(fmt.Sprintf("%s/writers=%d", p.name, writers), func(b *testing.B) {
				benchWrites(b, newStore(b), p.opts, writers)
			})
		}
	}
}

func benchWrites(b *testing.B, s persistence.Store, opts *persistence.CommitOptions, writers int) {
	var write func(r persistence.Record, done chan error)
	var c *persistence.Committer
	if opts == nil {
		write = func(r persistence.Record, done chan error) {
			done <- s.Save(context.Background(), []persistence.Record{r})
		}
	} else {
		c = persistence.NewCommitter(s, *opts)
		write = func(r persistence.Record, done chan error) { c.Enqueue(r, func(err error) { done <- err }) }
	}
	// One snapshot per status, shared by all writers: stores keep Data
	// verbatim and never decode it on the write path.
	data := map[order.Status][]byte{}
	for _, st := range []order.Status{order.Running, order.Completed} {
		o := newOrder("bench-order-0000000000", 1, st, base)
		data[st], _ = json.Marshal(&o)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := range writers {
		wg.Go(func() {
			done := make(chan error, 1)
			for k := 0; next.Add(1) <= int64(b.N); k++ {
				version := uint64(k%6 + 1)
				st := order.Running
				if version == 6 {
					st = order.Completed
				}
				created := base.Add(time.Duration(k/6) * time.Millisecond)
				r := persistence.Record{
					OrderID:   fmt.Sprintf("bench-%03d-%07d", g, k/6),
					Version:   version,
					Status:    st,
					CreatedAt: created,
					Deadline:  created.Add(time.Minute),
					Data:      data[st],
				}
				write(r, done)
				if err := <-done; err != nil {
					b.Errorf("write %s v%d: %v", r.OrderID, r.Version, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "snapshots/s")
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			b.Fatalf("close committer: %v", err)
		}
		if st := c.Stats(); st.Batches > 0 {
			b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
		}
	}
}
