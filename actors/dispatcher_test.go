package actors

import (
	"sync"
	"testing"
	"time"
)

// waitAll waits for wg with the package's one test timeout.
func waitAll(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("scheduled runs did not all run")
	}
}

func TestPoolDispatcher_runsEveryScheduledRunEvenWhenFullOrStopped(t *testing.T) {
	d := newPoolDispatcher(1, mailboxThroughput)
	block := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	d.Schedule(func() { <-block; wg.Done() }) // the only worker is busy
	// More than the queue holds: the rest must run on goroutines of their own.
	n := cap(d.work) + 50
	var mu sync.Mutex
	ran := 0
	wg.Add(n)
	for range n {
		d.Schedule(func() { mu.Lock(); ran++; mu.Unlock(); wg.Done() })
	}
	close(block)
	waitAll(t, &wg)
	if ran != n {
		t.Fatalf("%d of %d runs ran", ran, n)
	}

	d.stop()
	d.stop() // stopping twice is harmless
	wg.Add(1)
	d.Schedule(func() { wg.Done() })
	waitAll(t, &wg)
}

func TestPoolDispatcher_stopRunsWhatIsQueued(t *testing.T) {
	d := newPoolDispatcher(1, mailboxThroughput)
	block := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(11)
	d.Schedule(func() { <-block; wg.Done() })
	for range 10 {
		d.Schedule(func() { wg.Done() }) // queued behind the busy worker
	}
	d.stop()
	close(block)
	waitAll(t, &wg)
}
