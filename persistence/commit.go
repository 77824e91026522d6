package persistence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CommitOptions configures a Committer. Zero values take the defaults.
type CommitOptions struct {
	// MaxBatch is the most records handed to one Store.Save; default 256.
	MaxBatch int
	// MaxDelay is how long a record may wait for others to join its batch,
	// counted from when it was enqueued; default 1ms. A negative value
	// writes whatever is queued as soon as the writer is free. Either way a
	// batch forms by itself while the previous one is being written.
	MaxDelay time.Duration
	// Timeout bounds one batch write (the context given to Save); default 5s.
	Timeout time.Duration
	// OnBatch, when set, is called after every batch write with its size,
	// how long Save took and its error, for metrics. It must not block.
	OnBatch func(size int, took time.Duration, err error)
}

func (o *CommitOptions) setDefaults() {
	if o.MaxBatch < 1 {
		o.MaxBatch = 256
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
}

// CommitStats counts a Committer's work since it was made.
type CommitStats struct {
	// Batches is the number of Save calls.
	Batches uint64
	// Records is the number of records handed to Save.
	Records uint64
	// Superseded is the number of records never written because another
	// snapshot of the same order was queued with them; their callbacks got
	// that snapshot's outcome.
	Superseded uint64
}

// Committer is the group commit of DESIGN §6: it collects snapshots from many
// orders and writes them with one Store.Save per batch, bounded by MaxBatch
// and MaxDelay, then tells every waiter the outcome.
//
// While a record waits in the queue (not yet handed to Save), a newer
// snapshot of the same order replaces it and an older one is dropped; either
// way only the newest is written and every callback of that order gets the
// outcome of that one write. Versions never go backwards in the queue.
//
// A Committer owns one writer goroutine, started by NewCommitter and ended by
// Close; it does not own the Store, which the caller closes after Close.
// All methods are safe for concurrent use.
type Committer struct {
	store   Store
	opts    CommitOptions
	wake    chan struct{} // capacity 1: the queue or closed changed
	stopped chan struct{} // closed when the writer has exited

	mu     sync.Mutex
	queue  []*pending          // FIFO by first enqueue
	byID   map[string]*pending // the queued entry of each order
	closed bool

	batches, records, superseded atomic.Uint64
}

// pending is one order's queued record and everyone waiting for it.
type pending struct {
	rec   Record
	since time.Time // when the order entered the queue
	dones []func(error)
}

// NewCommitter starts a Committer writing to store.
func NewCommitter(store Store, opts CommitOptions) *Committer {
	opts.setDefaults()
	c := &Committer{
		store:   store,
		opts:    opts,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		byID:    make(map[string]*pending),
	}
	go c.run()
	return c
}

// Enqueue queues r to be written and returns at once. done, if not nil, is
// called exactly once from the writer goroutine with nil when r (or a newer
// snapshot of the same order that superseded it) is durable, with an error
// wrapping ErrStale (a *StaleError) when the store already held that version
// or a newer one, or with the write's error. After Close, done is called at
// once, on the caller's goroutine, with an error wrapping ErrClosed.
//
// done must not block: the next batch waits for it. The caller must not
// modify r.Data until done is called.
func (c *Committer) Enqueue(r Record, done func(error)) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if done != nil {
			done(fmt.Errorf("persistence: commit %s: %w", r.OrderID, ErrClosed))
		}
		return
	}
	if p := c.byID[r.OrderID]; p != nil {
		if r.Version > p.rec.Version {
			p.rec = r
		}
		if done != nil {
			p.dones = append(p.dones, done)
		}
		c.mu.Unlock()
		c.superseded.Add(1)
		return
	}
	p := &pending{rec: r, since: time.Now()}
	if done != nil {
		p.dones = []func(error){done}
	}
	c.queue = append(c.queue, p)
	c.byID[r.OrderID] = p
	n := len(c.queue)
	c.mu.Unlock()
	if n == 1 || n == c.opts.MaxBatch {
		c.signal()
	}
}

func (c *Committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close writes what is queued, then stops the writer. It returns nil when
// all is written, or ctx's error if ctx ends first (the writer then goes on
// flushing in the background). Enqueue after Close reports ErrClosed.
func (c *Committer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.signal()
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the counters so far.
func (c *Committer) Stats() CommitStats {
	return CommitStats{
		Batches:    c.batches.Load(),
		Records:    c.records.Load(),
		Superseded: c.superseded.Load(),
	}
}

// run is the writer goroutine: it waits until a batch is full, or its
// oldest record has waited MaxDelay, or the committer is closing, then
// writes it.
func (c *Committer) run() {
	defer close(c.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		c.mu.Lock()
		n, closed := len(c.queue), c.closed
		if n == 0 {
			c.mu.Unlock()
			if closed {
				return
			}
			<-c.wake
			continue
		}
		if !closed && n < c.opts.MaxBatch && c.opts.MaxDelay > 0 {
			if wait := c.opts.MaxDelay - time.Since(c.queue[0].since); wait > 0 {
				c.mu.Unlock()
				timer.Reset(wait)
				select {
				case <-c.wake:
					timer.Stop()
				case <-timer.C:
				}
				continue
			}
		}
		k := min(n, c.opts.MaxBatch)
		batch := c.queue[:k:k]
		c.queue = c.queue[k:]
		if len(c.queue) == 0 {
			c.queue = nil // let the written batch's array go
		}
		for _, p := range batch {
			delete(c.byID, p.rec.OrderID)
		}
		c.mu.Unlock()
		c.write(batch)
	}
}

// write saves one batch and reports the outcome to every waiter.
func (c *Committer) write(batch []*pending) {
	recs := make([]Record, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	began := time.Now()
	err := c.store.Save(ctx, recs)
	cancel()
	if c.opts.OnBatch != nil {
		c.opts.OnBatch(len(recs), time.Since(began), err)
	}
	c.batches.Add(1)
	c.records.Add(uint64(len(recs)))

	var stale *StaleError
	var staleIDs map[string]bool
	if errors.As(err, &stale) {
		staleIDs = make(map[string]bool, len(stale.OrderIDs))
		for _, id := range stale.OrderIDs {
			staleIDs[id] = true
		}
	}
	for _, p := range batch {
		id := p.rec.OrderID
		var perr error
		switch {
		case err == nil:
		case stale != nil:
			if staleIDs[id] {
				perr = &StaleError{OrderIDs: []string{id}}
			}
		default:
			perr = fmt.Errorf("persistence: commit %s: %w", id, err)
		}
		for _, done := range p.dones {
			done(perr)
		}
	}
}
