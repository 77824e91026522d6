// Package storetest is the conformance suite every persistence.Store backend
// runs, in the manner of watermill's pubsub/tests: one Run with the backend's
// constructor and Features flags for what the backend cannot promise.
//
// The suite's contract, beyond the Store doc comments:
//   - times are kept at least to the millisecond (the suite uses
//     millisecond times only);
//   - listing order is (CreatedAt desc, OrderID desc) and cursors continue
//     strictly after the last record returned, even across inserts;
//   - saving the identical snapshot again (same version, same data) is a
//     successful no-op, so a retried write is not reported stale; the same
//     version with other data is stale;
//   - a running record never expires: its ExpireAt is ignored and loads as
//     zero;
//   - errors about one order name its id;
//   - claims (Claim, Release) live apart from orders: a claim key may equal an
//     order id, and Expire does not count claims;
//   - after Close, operations fail with persistence.ErrClosed.
//
// It also offers Bench, the snapshot-write benchmark shared by the backends.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// Features lists what a backend cannot promise; the zero value promises all.
type Features struct {
	// NativeExpiry: the backend forgets finished orders by itself once their
	// ExpireAt has passed (Redis TTL), possibly as soon as they are saved,
	// so Expire's count is not checked; likewise claims, which Expire then
	// leaves alone.
	NativeExpiry bool
}

// Run runs the conformance suite. newStore returns a fresh, empty store for
// one test and arranges for it to be closed when the test ends (closing an
// already closed store must not panic).
func Run(t *testing.T, newStore func(t *testing.T) persistence.Store, f Features) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s persistence.Store)
	}{
		{"Save_roundtripKeepsDataVerbatim", testRoundtrip},
		{"Load_unknownIsNotFound", testLoadUnknown},
		{"LoadMany_inOrderLeavingOutUnknown", testLoadMany},
		{"LoadMany_showsNewestVersion", testLoadManyNewest},
		{"Save_batchOfMany", testBatch},
		{"Save_versionGuard", testVersionGuard},
		{"Active_deadlineOrder", testActiveOrder},
		{"Active_terminalLeavesIndex", testActiveTerminal},
		{"Active_deadlineMoves", testActiveDeadlineMoves},
		{"Active_stopsOnError", testActiveStops},
		{"List_empty", testListEmpty},
		{"List_newestFirstPagedWithoutGapsOrRepeats", testListPaged},
		{"List_cursorSurvivesInserts", testListCursorInserts},
		{"List_defaultLimit", testListDefaultLimit},
		{"List_badCursor", testListBadCursor},
		{"List_showsNewestVersion", testListNewestVersion},
		{"Expire_forgetsDueFinishedOrders", func(t *testing.T, s persistence.Store) { testExpire(t, s, f) }},
		{"Concurrent_saves", testConcurrent},
		{"Ping", testPing},
		{"Claim_firstWinsOthersGetItsValue", testClaimFirstWins},
		{"Claim_keysAreIndependent", testClaimKeysIndependent},
		{"Claim_ttlExpiresZeroKeeps", testClaimTTL},
		{"Claim_expireSweepsDueClaimsOnly", func(t *testing.T, s persistence.Store) { testClaimExpire(t, s, f) }},
		{"Claim_concurrentExactlyOneWins", testClaimConcurrent},
		{"Claim_badArguments", testClaimBadArguments},
		{"Release_onlyByTheHolder", testRelease},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
	t.Run("Close_thenErrClosed", func(t *testing.T) { testClosed(t, newStore(t)) })
}

// ctx returns a context bounded by the test's deadline, if any.
func ctx(t *testing.T) context.Context {
	c := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		c, cancel = context.WithDeadline(c, d)
		t.Cleanup(cancel)
	}
	return c
}

func save(t *testing.T, s persistence.Store, batch ...persistence.Record) {
	t.Helper()
	if err := s.Save(ctx(t), batch); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func load(t *testing.T, s persistence.Store, id string) persistence.Record {
	t.Helper()
	r, err := s.Load(ctx(t), id)
	if err != nil {
		t.Fatalf("Load %s: %v", id, err)
	}
	return r
}

func checkRecord(t *testing.T, got, want persistence.Record) {
	t.Helper()
	if got.OrderID != want.OrderID || got.Version != want.Version || got.Status != want.Status ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.Deadline.Equal(want.Deadline) || !got.ExpireAt.Equal(want.ExpireAt) {
		t.Errorf("record %s:\n got  {id %s v%d %v created %v deadline %v expire %v}\n want {id %s v%d %v created %v deadline %v expire %v}",
			want.OrderID,
			got.OrderID, got.Version, got.Status, got.CreatedAt, got.Deadline, got.ExpireAt,
			want.OrderID, want.Version, want.Status, want.CreatedAt, want.Deadline, want.ExpireAt)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("record %s: data not verbatim:\n got  %s\n want %s", want.OrderID, got.Data, want.Data)
	}
}

func testRoundtrip(t *testing.T, s persistence.Store) {
	running := newRecord(t, "ord-running", 1, order.Running, base)
	done := newRecord(t, "ord-done", 4, order.Completed, base.Add(time.Millisecond))
	kept := newRecord(t, "ord-kept", 3, order.Failed, base.Add(2*time.Millisecond))
	kept.ExpireAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	wants := []persistence.Record{running, done, kept}

	// The store must own its copy: the caller may reuse its buffers.
	batch := make([]persistence.Record, len(wants))
	for i, r := range wants {
		batch[i] = r
		batch[i].Data = bytes.Clone(r.Data)
	}
	save(t, s, batch...)
	for _, r := range batch {
		clear(r.Data)
	}
	for _, want := range wants {
		got := load(t, s, want.OrderID)
		checkRecord(t, got, want)
		var o order.Order
		if err := json.Unmarshal(got.Data, &o); err != nil || o.OrderID != want.OrderID {
			t.Errorf("Load %s: data does not decode as its order: %v", want.OrderID, err)
		}
		clear(got.Data) // nor may it share its buffer with the caller
	}
	checkRecord(t, load(t, s, running.OrderID), running)
}

func testLoadUnknown(t *testing.T, s persistence.Store) {
	save(t, s, newRecord(t, "ord-1", 1, order.Running, base))
	_, err := s.Load(ctx(t), "ord-unknown")
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("Load unknown: got %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "ord-unknown") {
		t.Errorf("Load unknown: error %q does not name the order", err)
	}
}

func testLoadMany(t *testing.T, s persistence.Store) {
	if got, err := s.LoadMany(ctx(t), nil); err != nil || len(got) != 0 {
		t.Fatalf("LoadMany of no ids = %d records, err %v; want none, nil", len(got), err)
	}
	running := newRecord(t, "ord-running", 2, order.Running, base)
	done := newRecord(t, "ord-done", 4, order.Completed, base.Add(time.Millisecond))
	kept := newRecord(t, "ord-kept", 3, order.Failed, base.Add(2*time.Millisecond))
	kept.ExpireAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	var many []persistence.Record
	for i := range 600 { // more than one chunk of any backend
		many = append(many, newRecord(t, fmt.Sprintf("ord-many-%03d", i), 1, order.Running, base.Add(time.Duration(i)*time.Millisecond)))
	}
	save(t, s, append([]persistence.Record{running, done, kept}, many...)...)

	ids := []string{"ord-kept", "ord-unknown", "ord-running", "", "ord-done", "ord-running"}
	want := []persistence.Record{kept, running, done, running}
	for i := len(many) - 1; i >= 0; i-- {
		ids = append(ids, many[i].OrderID)
		want = append(want, many[i])
	}
	got, err := s.LoadMany(ctx(t), ids)
	if err != nil {
		t.Fatalf("LoadMany: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("LoadMany of %d ids (2 unknown) = %d records, want %d", len(ids), len(got), len(want))
	}
	for i := range want {
		checkRecord(t, got[i], want[i])
	}
	// Each record owns its data: the store's copy and the others stay intact.
	clear(got[1].Data)
	checkRecord(t, got[3], running)
	checkRecord(t, load(t, s, "ord-running"), running)

	if got, err := s.LoadMany(ctx(t), []string{"ord-unknown"}); err != nil || len(got) != 0 {
		t.Errorf("LoadMany of an unknown id = %d records, err %v; want none, nil", len(got), err)
	}
}

func testLoadManyNewest(t *testing.T, s persistence.Store) {
	save(t, s, newRecord(t, "ord-a", 1, order.Running, base), newRecord(t, "ord-b", 1, order.Running, base))
	a2 := newRecord(t, "ord-a", 2, order.Completed, base)
	save(t, s, a2)
	got, err := s.LoadMany(ctx(t), []string{"ord-a", "ord-b"})
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadMany = %d records, err %v; want 2", len(got), err)
	}
	checkRecord(t, got[0], a2)
	checkRecord(t, got[1], newRecord(t, "ord-b", 1, order.Running, base))
}

func testBatch(t *testing.T, s persistence.Store) {
	if err := s.Save(ctx(t), nil); err != nil {
		t.Fatalf("Save empty batch: %v", err)
	}
	var batch []persistence.Record
	for i := range 300 {
		st := []order.Status{order.Running, order.Completed, order.Failed}[i%3]
		batch = append(batch, newRecord(t, fmt.Sprintf("ord-%03d", i), uint64(1+i%5), st, base.Add(time.Duration(i)*time.Millisecond)))
	}
	save(t, s, batch...)
	for _, want := range batch {
		checkRecord(t, load(t, s, want.OrderID), want)
	}
}

func testVersionGuard(t *testing.T, s persistence.Store) {
	a5 := newRecord(t, "ord-a", 5, order.Running, base)
	save(t, s, a5)

	older := newRecord(t, "ord-a", 3, order.Completed, base)
	b := newRecord(t, "ord-b", 1, order.Running, base.Add(time.Millisecond))
	c := newRecord(t, "ord-c", 1, order.Completed, base.Add(2*time.Millisecond))
	err := s.Save(ctx(t), []persistence.Record{b, older, c})
	checkStale(t, err, "ord-a")
	checkRecord(t, load(t, s, "ord-a"), a5)
	checkRecord(t, load(t, s, "ord-b"), b)
	checkRecord(t, load(t, s, "ord-c"), c)

	// The same version is stale too, whatever its data.
	same := newRecord(t, "ord-a", 5, order.Cancelled, base)
	checkStale(t, s.Save(ctx(t), []persistence.Record{same}), "ord-a")
	checkRecord(t, load(t, s, "ord-a"), a5)

	// A stale write leaves the indexes alone.
	var active []string
	if err := s.Active(ctx(t), func(id string, _ time.Time) error { active = append(active, id); return nil }); err != nil {
		t.Fatalf("Active: %v", err)
	}
	if !slices.Equal(active, []string{"ord-a", "ord-b"}) {
		t.Errorf("Active after stale writes = %v, want [ord-a ord-b]", active)
	}
	if got := listIDs(t, s, persistence.Query{Status: order.Cancelled}); len(got) != 0 {
		t.Errorf("List cancelled after stale write = %v, want none", got)
	}

	// The identical snapshot again (a retried write) is not stale.
	if err := s.Save(ctx(t), []persistence.Record{a5}); err != nil {
		t.Errorf("Save of the identical snapshot again: %v, want nil", err)
	}
	checkRecord(t, load(t, s, "ord-a"), a5)

	a6 := newRecord(t, "ord-a", 6, order.Completed, base)
	save(t, s, a6)
	checkRecord(t, load(t, s, "ord-a"), a6)
}

func checkStale(t *testing.T, err error, ids ...string) {
	t.Helper()
	if !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("Save: got %v, want ErrStale", err)
	}
	var se *persistence.StaleError
	if !errors.As(err, &se) {
		t.Fatalf("Save: %v is not a *StaleError", err)
	}
	got := slices.Sorted(slices.Values(se.OrderIDs))
	if !slices.Equal(got, ids) {
		t.Fatalf("StaleError.OrderIDs = %v, want %v", se.OrderIDs, ids)
	}
}

type deadline struct {
	id string
	at time.Time
}

func active(t *testing.T, s persistence.Store) []deadline {
	t.Helper()
	var got []deadline
	err := s.Active(ctx(t), func(id string, at time.Time) error {
		got = append(got, deadline{id, at})
		return nil
	})
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	return got
}

func checkActive(t *testing.T, got, want []deadline) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].id == want[i].id && got[i].at.Equal(want[i].at)
	}
	if !ok {
		t.Errorf("Active:\n got  %v\n want %v", got, want)
	}
}

func testActiveOrder(t *testing.T, s persistence.Store) {
	var batch []persistence.Record
	var want []deadline
	rng := rand.New(rand.NewPCG(1, 2))
	for i, off := range rng.Perm(40) {
		r := newRecord(t, fmt.Sprintf("ord-%02d", i), 1, order.Running, base)
		r.Deadline = base.Add(time.Duration(off/2) * time.Second) // pairs share a deadline
		batch = append(batch, r)
		want = append(want, deadline{r.OrderID, r.Deadline})
	}
	for i := range 5 {
		batch = append(batch, newRecord(t, fmt.Sprintf("ord-done-%d", i), 2, order.Completed, base))
	}
	rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	save(t, s, batch[:20]...)
	save(t, s, batch[20:]...)
	slices.SortFunc(want, func(a, b deadline) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	checkActive(t, active(t, s), want)
}

func testActiveTerminal(t *testing.T, s persistence.Store) {
	var batch []persistence.Record
	for _, id := range []string{"ord-a", "ord-b", "ord-c", "ord-d"} {
		batch = append(batch, newRecord(t, id, 1, order.Running, base))
	}
	save(t, s, batch...)
	save(t, s,
		newRecord(t, "ord-a", 2, order.Completed, base),
		newRecord(t, "ord-b", 2, order.Running, base),
		newRecord(t, "ord-c", 5, order.Cancelled, base),
		newRecord(t, "ord-d", 3, order.Expired, base),
	)
	checkActive(t, active(t, s), []deadline{{"ord-b", base.Add(time.Minute)}})
}

func testActiveDeadlineMoves(t *testing.T, s persistence.Store) {
	r := newRecord(t, "ord-a", 1, order.Running, base)
	save(t, s, r, newRecord(t, "ord-b", 1, order.Running, base.Add(time.Second)))
	r2 := newRecord(t, "ord-a", 2, order.Running, base)
	r2.Deadline = base.Add(time.Hour)
	save(t, s, r2)
	checkActive(t, active(t, s), []deadline{{"ord-b", base.Add(time.Second + time.Minute)}, {"ord-a", base.Add(time.Hour)}})
}

func testActiveStops(t *testing.T, s persistence.Store) {
	var batch []persistence.Record
	for i := range 10 {
		batch = append(batch, newRecord(t, fmt.Sprintf("ord-%d", i), 1, order.Running, base))
	}
	save(t, s, batch...)
	stop := errors.New("stop here")
	calls := 0
	err := s.Active(ctx(t), func(string, time.Time) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Active with failing fn: err %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// listAll pages through q to the end, checking the page shapes, and returns
// every record in order.
func listAll(t *testing.T, s persistence.Store, q persistence.Query) []persistence.Record {
	t.Helper()
	var all []persistence.Record
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("List %+v: still paging after %d pages", q, page)
		}
		p, err := s.List(ctx(t), q)
		if err != nil {
			t.Fatalf("List %+v: %v", q, err)
		}
		all = append(all, p.Records...)
		if p.Next == "" {
			if q.Limit > 0 && len(p.Records) > q.Limit {
				t.Fatalf("List %+v: last page has %d records", q, len(p.Records))
			}
			return all
		}
		if len(p.Records) != q.Limit {
			t.Fatalf("List %+v: page %d has %d records and a next cursor, want a full page of %d", q, page, len(p.Records), q.Limit)
		}
		q.Cursor = p.Next
	}
}

func listIDs(t *testing.T, s persistence.Store, q persistence.Query) []string {
	t.Helper()
	var ids []string
	for _, r := range listAll(t, s, q) {
		ids = append(ids, r.OrderID)
	}
	return ids
}

// newest sorts records in listing order.
func newest(rs []persistence.Record) {
	slices.SortFunc(rs, func(a, b persistence.Record) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.OrderID, a.OrderID)
	})
}

func testListEmpty(t *testing.T, s persistence.Store) {
	p, err := s.List(ctx(t), persistence.Query{})
	if err != nil || len(p.Records) != 0 || p.Next != "" {
		t.Errorf("List of an empty store = %d records, next %q, err %v; want nothing", len(p.Records), p.Next, err)
	}
}

// manyOrders saves n orders, three per creation millisecond, with ids out of
// creation order and statuses mixed, in shuffled batches.
func manyOrders(t *testing.T, s persistence.Store, n int) []persistence.Record {
	statuses := []order.Status{order.Running, order.Completed, order.Failed, order.Expired, order.Cancelled, order.Running}
	var rs []persistence.Record
	for i := range n {
		id := fmt.Sprintf("ord-%04d", (i*37)%n)
		rs = append(rs, newRecord(t, id, 1, statuses[i%len(statuses)], base.Add(time.Duration(i/3)*time.Millisecond)))
	}
	shuffled := slices.Clone(rs)
	rand.New(rand.NewPCG(3, 4)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		k := min(50, len(shuffled))
		save(t, s, shuffled[:k]...)
		shuffled = shuffled[k:]
	}
	newest(rs)
	return rs
}

func testListPaged(t *testing.T, s persistence.Store) {
	all := manyOrders(t, s, 250)
	for _, st := range []order.Status{0, order.Running, order.Completed, order.Cancelled} {
		for _, limit := range []int{7, 50, 500} {
			var want []persistence.Record
			for _, r := range all {
				if st == 0 || r.Status == st {
					want = append(want, r)
				}
			}
			got := listAll(t, s, persistence.Query{Status: st, Limit: limit})
			if len(got) != len(want) {
				t.Errorf("List status %v limit %d: %d records, want %d", st, limit, len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				if got[i].OrderID != want[i].OrderID {
					t.Fatalf("List status %v limit %d: record %d is %s, want %s", st, limit, i, got[i].OrderID, want[i].OrderID)
				}
				checkRecord(t, got[i], want[i])
			}
		}
	}
}

func testListCursorInserts(t *testing.T, s persistence.Store) {
	all := manyOrders(t, s, 30)
	first, err := s.List(ctx(t), persistence.Query{Limit: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	// Newer orders, and one created in the same millisecond as the page's
	// last record, arrive between pages.
	last := first.Records[len(first.Records)-1]
	save(t, s,
		newRecord(t, "ord-new-1", 1, order.Running, base.Add(time.Hour)),
		newRecord(t, "ord-new-2", 1, order.Running, base.Add(time.Hour)),
		newRecord(t, last.OrderID+"-z", 1, order.Running, last.CreatedAt), // sorts before last: already passed
	)
	rest := listIDs(t, s, persistence.Query{Limit: 10, Cursor: first.Next})
	var want []string
	for _, r := range all[10:] {
		want = append(want, r.OrderID)
	}
	if !slices.Equal(rest, want) {
		t.Errorf("List after inserts:\n got  %v\n want %v", rest, want)
	}
}

func testListDefaultLimit(t *testing.T, s persistence.Store) {
	manyOrders(t, s, 150)
	for _, limit := range []int{0, -1} {
		p, err := s.List(ctx(t), persistence.Query{Limit: limit})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(p.Records) != 100 || p.Next == "" {
			t.Errorf("List limit %d: %d records, next %q; want 100 and a cursor", limit, len(p.Records), p.Next)
		}
	}
}

func testListBadCursor(t *testing.T, s persistence.Store) {
	manyOrders(t, s, 5)
	_, err := s.List(ctx(t), persistence.Query{Cursor: "not a cursor!"})
	if !errors.Is(err, persistence.ErrBadCursor) {
		t.Errorf("List with a bad cursor: got %v, want ErrBadCursor", err)
	}
}

func testListNewestVersion(t *testing.T, s persistence.Store) {
	save(t, s, newRecord(t, "ord-a", 1, order.Running, base), newRecord(t, "ord-b", 1, order.Running, base))
	a2 := newRecord(t, "ord-a", 2, order.Completed, base)
	save(t, s, a2)
	if got := listIDs(t, s, persistence.Query{Status: order.Running}); !slices.Equal(got, []string{"ord-b"}) {
		t.Errorf("List running = %v, want [ord-b]", got)
	}
	got := listAll(t, s, persistence.Query{Status: order.Completed})
	if len(got) != 1 {
		t.Fatalf("List completed = %d records, want 1", len(got))
	}
	checkRecord(t, got[0], a2)
}

func testExpire(t *testing.T, s persistence.Store, f Features) {
	now := time.Now().Truncate(time.Millisecond)
	finished := func(id string, version uint64, expireAt time.Time) persistence.Record {
		r := newRecord(t, id, version, order.Completed, base)
		r.ExpireAt = expireAt
		return r
	}
	due := finished("ord-due", 2, now.Add(-time.Second))
	dueNow := finished("ord-due-now", 2, now)
	later := finished("ord-later", 2, now.Add(time.Hour))
	forever := finished("ord-forever", 2, time.Time{})
	running := newRecord(t, "ord-running", 1, order.Running, base)
	running.ExpireAt = now.Add(-time.Second) // ignored: running orders never expire
	extended := finished("ord-extended", 2, now.Add(-time.Second))
	save(t, s, due, dueNow, later, forever, running, extended)
	extended2 := finished("ord-extended", 3, now.Add(time.Hour))
	save(t, s, extended2)

	n, err := s.Expire(ctx(t), now)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if !f.NativeExpiry && n != 2 {
		t.Errorf("Expire removed %d orders, want 2", n)
	}
	for _, id := range []string{"ord-due", "ord-due-now"} {
		if _, err := s.Load(ctx(t), id); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("Load %s after Expire: got %v, want ErrNotFound", id, err)
		}
	}
	running.ExpireAt = time.Time{}
	for _, want := range []persistence.Record{later, forever, running, extended2} {
		checkRecord(t, load(t, s, want.OrderID), want)
	}
	got := slices.Sorted(slices.Values(listIDs(t, s, persistence.Query{Limit: 2})))
	if want := []string{"ord-extended", "ord-forever", "ord-later", "ord-running"}; !slices.Equal(got, want) {
		t.Errorf("List after Expire = %v, want %v", got, want)
	}
	checkActive(t, active(t, s), []deadline{{"ord-running", running.Deadline}})
	if n, err := s.Expire(ctx(t), now); err != nil || (!f.NativeExpiry && n != 0) {
		t.Errorf("second Expire = %d, %v; want 0, nil", n, err)
	}
}

func testConcurrent(t *testing.T, s persistence.Store) {
	const writers, rounds = 8, 25
	const shared = "ord-shared"
	var wg, readers sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.List(ctx(t), persistence.Query{Limit: 10}); err != nil {
					t.Errorf("List: %v", err)
					return
				}
				if err := s.Active(ctx(t), func(string, time.Time) error { return nil }); err != nil {
					t.Errorf("Active: %v", err)
					return
				}
			}
		})
	}
	for g := range writers {
		wg.Go(func() {
			for k := range rounds {
				v := uint64(k*writers + g + 1)
				own := newRecord(t, fmt.Sprintf("ord-%d-%d", g, k), 1, order.Running, base.Add(time.Duration(k)*time.Millisecond))
				err := s.Save(ctx(t), []persistence.Record{own, newRecord(t, shared, v, order.Running, base)})
				var se *persistence.StaleError
				if err != nil && (!errors.As(err, &se) || !slices.Equal(se.OrderIDs, []string{shared})) {
					t.Errorf("Save v%d: %v", v, err)
					return
				}
				r, err := s.Load(ctx(t), shared)
				if err != nil || r.Version < v {
					t.Errorf("Load after saving v%d: version %d, %v; want at least %d", v, r.Version, err, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	r := load(t, s, shared)
	var o order.Order
	if err := json.Unmarshal(r.Data, &o); err != nil {
		t.Fatalf("decode %s: %v", shared, err)
	}
	if r.Version != writers*rounds || o.Version != writers*rounds {
		t.Errorf("%s: stored version %d with data of version %d, want %d", shared, r.Version, o.Version, writers*rounds)
	}
	if got := len(listIDs(t, s, persistence.Query{Limit: 100})); got != writers*rounds+1 {
		t.Errorf("List after concurrent saves: %d orders, want %d", got, writers*rounds+1)
	}
}

func testPing(t *testing.T, s persistence.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, s persistence.Store) {
	save(t, s, newRecord(t, "ord-a", 1, order.Running, base))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Save(ctx(t), []persistence.Record{newRecord(t, "ord-b", 1, order.Running, base)}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Save after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Load(ctx(t), "ord-a"); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Load after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.LoadMany(ctx(t), []string{"ord-a"}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("LoadMany after Close: got %v, want ErrClosed", err)
	}
	if err := s.Ping(ctx(t)); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Ping after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := s.Claim(ctx(t), "idem-1", []byte("v"), 0); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Claim after Close: got %v, want ErrClosed", err)
	}
	if err := s.Release(ctx(t), "idem-1", []byte("v")); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("Release after Close: got %v, want ErrClosed", err)
	}
}
