package actors

import (
	goruntime "runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// poolDispatcher runs actor mailboxes on a fixed set of long-lived
// goroutines instead of a new goroutine per mailbox run (protoactor's
// default). A new goroutine starts with a small stack and grows it again,
// by copying, every time an order steps its machine and encodes a snapshot;
// a pooled one keeps the stack it grew. When every worker is busy and the
// queue is full, a run falls back to its own goroutine, so Schedule never
// blocks (a mailbox may schedule another from a worker).
//
// It is safe for concurrent use. stop lets the workers exit once the queue
// is empty; runs scheduled after that get their own goroutines.
type poolDispatcher struct {
	work       chan func()
	done       chan struct{}
	throughput int

	mu      sync.RWMutex // held for reading while a run is queued
	stopped bool
}

var _ actor.Dispatcher = (*poolDispatcher)(nil)

// newPoolDispatcher starts workers goroutines (at least one) that run up to
// throughput messages of a mailbox before yielding.
func newPoolDispatcher(workers, throughput int) *poolDispatcher {
	workers = max(workers, 1)
	d := &poolDispatcher{work: make(chan func(), workers*256), done: make(chan struct{}), throughput: throughput}
	for range workers {
		go d.loop()
	}
	return d
}

// defaultWorkers is the pool size: a few per CPU, so that a mailbox run
// that yields (Gosched) does not hold back the rest.
func defaultWorkers() int { return 4 * goruntime.GOMAXPROCS(0) }

func (d *poolDispatcher) loop() {
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.done:
			for { // finish what was queued before stop
				select {
				case fn := <-d.work:
					fn()
				default:
					return
				}
			}
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *poolDispatcher) Schedule(fn func()) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.stopped {
		go fn()
		return
	}
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput implements actor.Dispatcher.
func (d *poolDispatcher) Throughput() int { return d.throughput }

// stop lets the workers exit once they have run what is queued: a run
// queued before stop took the lock is in the queue when done closes.
func (d *poolDispatcher) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.stopped = true
		close(d.done)
	}
}

// mailboxThroughput is how many messages a mailbox runs before it yields
// its worker (protoactor's default).
const mailboxThroughput = 300
