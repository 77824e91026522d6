package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// Recoverer is what Recover reads; every persistence.Store is one.
type Recoverer interface {
	// Active calls fn for every running order, in deadline order.
	Active(ctx context.Context, fn func(orderID string, deadline time.Time) error) error
	// LoadMany returns the stored snapshots of the orders that exist, in the
	// order asked.
	LoadMany(ctx context.Context, orderIDs []string) ([]persistence.Record, error)
}

// RecoverOptions tunes Recover. Zero values take the defaults.
type RecoverOptions struct {
	// Batch is how many orders one LoadMany reads (default 512).
	Batch int
	// Loaders is how many LoadMany calls run at once (default 2).
	Loaders int
	// RetryFor is how long a batch whose load fails is retried, with
	// backoff, before its orders are given up to load on their first
	// request (default 1m).
	RetryFor time.Duration
}

func (o *RecoverOptions) setDefaults() {
	if o.Batch <= 0 {
		o.Batch = 512
	}
	if o.Loaders <= 0 {
		o.Loaders = 2
	}
	if o.RetryFor <= 0 {
		o.RetryFor = time.Minute
	}
}

// RecoveryStats counts what the background loading of a Recover did.
type RecoveryStats struct {
	// Loaded orders were handed their snapshot (or had loaded it already
	// on their own, for a request that came first).
	Loaded int
	// Gone orders were in the active index but had no snapshot any more.
	Gone int
	// Failed orders could not be loaded within RecoverOptions.RetryFor;
	// each stays known and is loaded when a request for it comes.
	Failed int
}

// Recovery is a Recover under way: every order it knows is in memory (its
// actor stashes requests until its snapshot arrives), and the snapshots are
// being loaded in batches. Safe for concurrent use.
type Recovery struct {
	known int
	done  chan struct{}
	stats RecoveryStats // written before done is closed
}

// Known returns how many orders Recover entered into memory.
func (r *Recovery) Known() int { return r.known }

// Wait waits until every known order's snapshot was loaded (or given up)
// or ctx ends, and returns the counts.
func (r *Recovery) Wait(ctx context.Context) (RecoveryStats, error) {
	select {
	case <-r.done:
		return r.stats, nil
	case <-ctx.Done():
		return RecoveryStats{}, fmt.Errorf("recovery: wait for the loads: %w", ctx.Err())
	}
}

// preload is one order Recover entered, with its actor.
type preload struct {
	id  string
	pid *actor.PID
}

// Recover brings every running order of src into memory, in two steps. It
// walks the active index and enters, for every order not in memory yet, an
// actor that stashes requests until its snapshot comes, and returns when the
// walk is done: from then on every running order is known, and a request for
// one is served as soon as it is loaded. Then the snapshots are loaded in
// the background, opts.Batch per LoadMany, opts.Loaders at a time, nearest
// deadline first, and handed to the actors, which activate them (the
// deadline re-armed from its stored time, unacknowledged callouts sent
// again). An actor that gets a request before its batch loads on its own;
// the batch's record then comes second and is ignored.
//
// If the walk fails, Recover returns the error with the Recovery of the
// orders it entered so far, which are loaded all the same; walking again
// skips the orders already in memory. Background loading stops early when
// ctx ends; the orders left are then given up as failed.
func (c *Client) Recover(ctx context.Context, src Recoverer, opts RecoverOptions) (*Recovery, error) {
	opts.setDefaults()
	r := &Recovery{done: make(chan struct{})}
	var batches [][]preload
	var batch []preload
	err := src.Active(ctx, func(id string, _ time.Time) error {
		if _, ok := c.rt.dir.lookup(id); ok {
			return nil // a request brought it in already
		}
		pid := c.spawn(id, &boot{preload: true})
		if _, ok := c.rt.dir.enter(id, pid); !ok {
			c.discard(id, pid)
			return nil
		}
		r.known++
		batch = append(batch, preload{id: id, pid: pid})
		if len(batch) == opts.Batch {
			batches, batch = append(batches, batch), nil
		}
		return nil
	})
	if len(batch) > 0 {
		batches = append(batches, batch)
	}

	// The loads start after the walk: on a small machine they would slow
	// it down, and until it is done the orders are not all known.
	queue := make(chan []preload, len(batches))
	for _, b := range batches {
		queue <- b
	}
	close(queue)
	var wg sync.WaitGroup
	counts := make([]RecoveryStats, opts.Loaders)
	for i := range opts.Loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range queue {
				s := c.preloadBatch(ctx, src, b, opts.RetryFor)
				counts[i].Loaded += s.Loaded
				counts[i].Gone += s.Gone
				counts[i].Failed += s.Failed
			}
		}()
	}
	go func() {
		wg.Wait()
		for _, s := range counts {
			r.stats.Loaded += s.Loaded
			r.stats.Gone += s.Gone
			r.stats.Failed += s.Failed
		}
		close(r.done)
	}()
	if err != nil {
		return r, fmt.Errorf("recovery: walk the running orders: %w", err)
	}
	return r, nil
}

// preloadBatch loads the snapshots of one batch, retrying with backoff for
// up to retryFor, and sends each actor its record, or the reason it has none.
func (c *Client) preloadBatch(ctx context.Context, src Recoverer, batch []preload, retryFor time.Duration) RecoveryStats {
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id
	}
	var recs []persistence.Record
	var err error
	giveUp := time.Now().Add(retryFor)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		lctx, cancel := context.WithTimeout(ctx, c.rt.cfg.RequestTimeout)
		recs, err = src.LoadMany(lctx, ids)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			break
		}
		c.rt.log.Warn("recovery: loading a batch of orders failed; retrying", "orders", len(ids), "first", ids[0], "retryIn", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	root := c.system.Root
	if err != nil {
		if ctx.Err() == nil { // else shutting down: nothing to report
			c.rt.log.Error("recovery: orders not loaded; each is loaded on its first request", "orders", len(ids), "first", ids[0], "err", err)
		}
		for _, p := range batch {
			root.Send(p.pid, loaded{err: err, preload: true})
		}
		return RecoveryStats{Failed: len(batch)}
	}
	byID := make(map[string]persistence.Record, len(recs))
	for _, r := range recs {
		byID[r.OrderID] = r
	}
	var s RecoveryStats
	for _, p := range batch {
		if r, ok := byID[p.id]; ok {
			// Decoded here, on a long-lived goroutine: the actor's
			// goroutine is fresh, and would grow its stack to decode.
			// One that does not decode is left to the actor, which logs it.
			msg := loaded{rec: r, preload: true, decoded: new(order.Order)}
			if json.Unmarshal(r.Data, msg.decoded) != nil {
				msg.decoded = nil
			}
			root.Send(p.pid, msg)
			s.Loaded++
			continue
		}
		// Finished and expired, or deleted, since the walk read its id.
		root.Send(p.pid, loaded{err: fmt.Errorf("recovery: order %s: %w", p.id, persistence.ErrNotFound), preload: true})
		s.Gone++
	}
	return s
}
