package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// shortTTL is the ttl of the claims the suite waits out; claimWait bounds
// the wait.
const (
	shortTTL  = 50 * time.Millisecond
	claimWait = 10 * time.Second
)

// claim calls s.Claim and checks its outcome.
func claim(t *testing.T, s persistence.Store, key, value string, ttl time.Duration, wantHeld string, wantWon bool) {
	t.Helper()
	held, won, err := s.Claim(ctx(t), key, []byte(value), ttl)
	if err != nil {
		t.Fatalf("Claim %s %q: %v", key, value, err)
	}
	if string(held) != wantHeld || won != wantWon {
		t.Errorf("Claim %s %q = %q, won %v; want %q, won %v", key, value, held, won, wantHeld, wantWon)
	}
}

func release(t *testing.T, s persistence.Store, key, value string) {
	t.Helper()
	if err := s.Release(ctx(t), key, []byte(value)); err != nil {
		t.Fatalf("Release %s %q: %v", key, value, err)
	}
}

// claimOnce claims key for value (ttl 0) at most once every few
// milliseconds until it wins, and reports how long after since it won; until
// then key must hold prev. It fails the test if it has not won within
// claimWait.
func claimOnce(t *testing.T, s persistence.Store, key, value, prev string, since time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(claimWait)
	for {
		held, won, err := s.Claim(ctx(t), key, []byte(value), 0)
		if err != nil {
			t.Fatalf("Claim %s %q: %v", key, value, err)
		}
		if won {
			if string(held) != value {
				t.Errorf("Claim %s %q won holding %q", key, value, held)
			}
			return time.Since(since)
		}
		if string(held) != prev {
			t.Fatalf("Claim %s %q = %q, want %q until it expires", key, value, held, prev)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim %s %q: still held (%q) %v after its ttl of %v", key, value, held, claimWait, shortTTL)
		}
		select {
		case <-ctx(t).Done():
			t.Fatalf("Claim %s %q: %v", key, value, ctx(t).Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func testClaimFirstWins(t *testing.T, s persistence.Store) {
	// The store must own its copy of value, and hand out its own copies.
	buf := []byte("first")
	held, won, err := s.Claim(ctx(t), "idem-1", buf, 0)
	if err != nil || !won || string(held) != "first" {
		t.Fatalf("first Claim = %q, won %v, %v; want \"first\", won", held, won, err)
	}
	clear(buf)
	clear(held)
	claim(t, s, "idem-1", "second", 0, "first", false)
	claim(t, s, "idem-1", "second", time.Hour, "first", false)
	// The held value again does not win either: won means "this call stored it".
	claim(t, s, "idem-1", "first", 0, "first", false)

	// Binary values and the empty value are kept verbatim.
	bin := "\x00\xff\r\n\x00"
	claim(t, s, "idem-bin", bin, 0, bin, true)
	claim(t, s, "idem-bin", "other", 0, bin, false)
	claim(t, s, "idem-empty", "", 0, "", true)
	claim(t, s, "idem-empty", "other", 0, "", false)
}

func testClaimKeysIndependent(t *testing.T, s persistence.Store) {
	// Claims live apart from orders, even under an order's id.
	r := newRecord(t, "ord-a", 1, order.Running, base)
	save(t, s, r)
	keys := []string{"ord-a", "ord-a:x", "ord-", "secret", "server secret", "ключ"}
	for i, key := range keys {
		claim(t, s, key, fmt.Sprintf("v%d", i), 0, fmt.Sprintf("v%d", i), true)
	}
	for i, key := range keys {
		claim(t, s, key, "other", 0, fmt.Sprintf("v%d", i), false)
	}
	checkRecord(t, load(t, s, "ord-a"), r)
	release(t, s, "ord-a", "v0")
	checkRecord(t, load(t, s, "ord-a"), r)
	claim(t, s, "ord-a", "again", 0, "again", true)
	for i, key := range keys[1:] {
		claim(t, s, key, "other", 0, fmt.Sprintf("v%d", i+1), false)
	}
	if ids := listIDs(t, s, persistence.Query{}); len(ids) != 1 || ids[0] != "ord-a" {
		t.Errorf("List with claims stored = %v, want [ord-a]", ids)
	}
}

func testClaimTTL(t *testing.T, s persistence.Store) {
	start := time.Now()
	claim(t, s, "forever", "kept", 0, "kept", true)
	claim(t, s, "short", "first", shortTTL, "first", true)
	held, won, err := s.Claim(ctx(t), "short", []byte("early"), 0)
	switch {
	case err != nil:
		t.Fatalf("Claim short again: %v", err)
	case won && time.Since(start) < shortTTL:
		t.Fatalf("Claim short again won after %v, before the ttl of %v", time.Since(start), shortTTL)
	case !won && string(held) != "first":
		t.Errorf("Claim short again = %q, want \"first\"", held)
	}
	holder := "early" // won above on a slow machine, after the ttl
	if !won {
		holder = "second"
		if took := claimOnce(t, s, "short", holder, "first", start); took < shortTTL {
			t.Errorf("short claimed again %v after the first claim, before its ttl of %v", took, shortTTL)
		}
	}
	// The new value was claimed with ttl 0, and ttl 0 keeps.
	claim(t, s, "short", "third", 0, holder, false)
	claim(t, s, "forever", "other", 0, "kept", false)
}

func testClaimExpire(t *testing.T, s persistence.Store, f Features) {
	claim(t, s, "forever", "kept", 0, "kept", true)
	claim(t, s, "hour", "kept", time.Hour, "kept", true)
	far := time.Now().AddDate(100, 0, 0)
	n, err := s.Expire(ctx(t), far)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if f.NativeExpiry {
		// The backend expires claims by itself: Expire leaves them.
		claim(t, s, "hour", "other", 0, "kept", false)
	} else {
		if n != 0 {
			t.Errorf("Expire with only claims stored = %d, want 0 (claims are not counted)", n)
		}
		// Due at far: Expire deleted it.
		claim(t, s, "hour", "other", 0, "other", true)
	}
	claim(t, s, "forever", "other", 0, "kept", false)
}

func testRelease(t *testing.T, s persistence.Store) {
	release(t, s, "absent", "x") // nothing to release
	claim(t, s, "idem-1", "mine", time.Hour, "mine", true)
	release(t, s, "idem-1", "not mine")
	release(t, s, "idem-1", "")
	claim(t, s, "idem-1", "other", 0, "mine", false)
	release(t, s, "idem-1", "mine")
	claim(t, s, "idem-1", "other", 0, "other", true)
	release(t, s, "idem-1", "mine") // released already: now another's
	claim(t, s, "idem-1", "third", 0, "other", false)

	claim(t, s, "idem-empty", "", 0, "", true)
	release(t, s, "idem-empty", "x")
	claim(t, s, "idem-empty", "y", 0, "", false)
	release(t, s, "idem-empty", "")
	claim(t, s, "idem-empty", "y", 0, "y", true)
}

func testClaimConcurrent(t *testing.T, s persistence.Store) {
	const claimants = 50
	type outcome struct {
		held []byte
		won  bool
		err  error
	}
	var outcomes [claimants]outcome
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range claimants {
		wg.Go(func() {
			<-start
			o := &outcomes[i]
			o.held, o.won, o.err = s.Claim(ctx(t), "contended", fmt.Appendf(nil, "claimant-%02d", i), time.Hour)
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("claimant %d: %v", i, o.err)
		}
		if o.won {
			winners = append(winners, i)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent claims won (%v), want exactly 1", len(winners), claimants, winners)
	}
	want := fmt.Appendf(nil, "claimant-%02d", winners[0])
	for i, o := range outcomes {
		if !bytes.Equal(o.held, want) {
			t.Errorf("claimant %d got %q, want the winner's %q", i, o.held, want)
		}
	}
	claim(t, s, "contended", "late", 0, string(want), false)
}

func testClaimBadArguments(t *testing.T, s persistence.Store) {
	if _, _, err := s.Claim(ctx(t), "", []byte("v"), 0); err == nil {
		t.Error("Claim of the empty key succeeded")
	}
	_, _, err := s.Claim(ctx(t), "negative", []byte("v"), -time.Second)
	if err == nil {
		t.Error("Claim with a negative ttl succeeded")
	} else if errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Claim with a negative ttl: %v, want an error that is not ErrUnavailable", err)
	}
	claim(t, s, "negative", "v", 0, "v", true) // the bad call stored nothing
}
