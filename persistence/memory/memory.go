// Package memory is an in-memory persistence.Store: for tests, development
// and runs where losing every order on exit is acceptable.
package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/internal/claim"
	"github.com/fanflow/fanflow/persistence/internal/cursor"
)

// Store keeps records in maps guarded by one mutex, with the listing index
// as a sorted slice. It is safe for concurrent use. The zero value is not
// usable; call New.
type Store struct {
	mu      sync.RWMutex
	orders  map[string]persistence.Record
	created []cursor.Pos // listing order: newest first
	kv      map[string]claimed
	closed  bool
}

// claimed is the value a key holds (see Claim).
type claimed struct {
	value    []byte
	expireAt time.Time // zero: never; else with a monotonic reading
}

// live reports whether c has not expired at now.
func (c claimed) live(now time.Time) bool {
	return c.expireAt.IsZero() || now.Before(c.expireAt)
}

var _ persistence.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{orders: make(map[string]persistence.Record), kv: make(map[string]claimed)}
}

func posOf(r persistence.Record) cursor.Pos {
	return cursor.Pos{MS: r.CreatedAt.UnixMilli(), ID: r.OrderID}
}

func comparePos(a, b cursor.Pos) int {
	if c := cmp.Compare(b.MS, a.MS); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// Save implements persistence.Store.
func (s *Store) Save(ctx context.Context, batch []persistence.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: save: %w", persistence.ErrClosed)
	}
	var stale []string
	for _, r := range batch {
		old, ok := s.orders[r.OrderID]
		if ok && old.Version == r.Version && bytes.Equal(old.Data, r.Data) {
			continue // the same snapshot again
		}
		if ok && old.Version >= r.Version {
			stale = append(stale, r.OrderID)
			continue
		}
		if ok {
			i, _ := slices.BinarySearchFunc(s.created, posOf(old), comparePos)
			s.created = slices.Delete(s.created, i, i+1)
		}
		if !r.Status.Terminal() {
			r.ExpireAt = time.Time{}
		}
		r.Data = bytes.Clone(r.Data)
		s.orders[r.OrderID] = r
		i, _ := slices.BinarySearchFunc(s.created, posOf(r), comparePos)
		s.created = slices.Insert(s.created, i, posOf(r))
	}
	if stale != nil {
		return &persistence.StaleError{OrderIDs: stale}
	}
	return nil
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, orderID string) (persistence.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return persistence.Record{}, fmt.Errorf("memory: load %s: %w", orderID, persistence.ErrClosed)
	}
	r, ok := s.orders[orderID]
	if !ok {
		return persistence.Record{}, fmt.Errorf("memory: load %s: %w", orderID, persistence.ErrNotFound)
	}
	r.Data = bytes.Clone(r.Data)
	return r, nil
}

// LoadMany implements persistence.Store under one read lock.
func (s *Store) LoadMany(ctx context.Context, orderIDs []string) ([]persistence.Record, error) {
	if len(orderIDs) == 0 {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("memory: load %d orders: %w", len(orderIDs), persistence.ErrClosed)
	}
	found := make([]persistence.Record, 0, len(orderIDs))
	for _, id := range orderIDs {
		if r, ok := s.orders[id]; ok {
			r.Data = bytes.Clone(r.Data)
			found = append(found, r)
		}
	}
	return found, nil
}

// List implements persistence.Store.
func (s *Store) List(ctx context.Context, q persistence.Query) (persistence.Page, error) {
	after, ok, err := cursor.Decode(q.Cursor)
	if err != nil {
		return persistence.Page{}, fmt.Errorf("memory: list: %w", err)
	}
	limit := q.Limit
	if limit < 1 {
		limit = 100
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return persistence.Page{}, fmt.Errorf("memory: list: %w", persistence.ErrClosed)
	}
	i := 0
	if ok {
		i, ok = slices.BinarySearchFunc(s.created, after, comparePos)
		if ok {
			i++
		}
	}
	var page persistence.Page
	for ; i < len(s.created); i++ {
		r := s.orders[s.created[i].ID]
		if q.Status != 0 && r.Status != q.Status {
			continue
		}
		if len(page.Records) == limit {
			page.Next = cursor.Encode(posOf(page.Records[limit-1]))
			break
		}
		r.Data = bytes.Clone(r.Data)
		page.Records = append(page.Records, r)
	}
	return page, nil
}

// Active implements persistence.Store. It calls fn on a copy of the index,
// without holding the lock, so fn may use the store.
func (s *Store) Active(ctx context.Context, fn func(orderID string, deadline time.Time) error) error {
	type entry struct {
		id string
		at time.Time
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("memory: active: %w", persistence.ErrClosed)
	}
	var active []entry
	for id, r := range s.orders {
		if !r.Status.Terminal() {
			active = append(active, entry{id, r.Deadline})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(active, func(a, b entry) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id))
	})
	for _, e := range active {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.id, e.at); err != nil {
			return err
		}
	}
	return nil
}

// Expire implements persistence.Store.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("memory: expire: %w", persistence.ErrClosed)
	}
	n := 0
	for id, r := range s.orders {
		if r.Status.Terminal() && !r.ExpireAt.IsZero() && !r.ExpireAt.After(now) {
			delete(s.orders, id)
			i, _ := slices.BinarySearchFunc(s.created, posOf(r), comparePos)
			s.created = slices.Delete(s.created, i, i+1)
			n++
		}
	}
	for key, c := range s.kv {
		if !c.live(now) {
			delete(s.kv, key) // not counted: n counts orders
		}
	}
	return n, nil
}

// Claim implements persistence.Store. Expiry follows the process's
// monotonic clock; an expired value is replaced by the next claim, and
// removed by Expire.
func (s *Store) Claim(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := claim.Check(key, ttl); err != nil {
		return nil, false, fmt.Errorf("memory: claim %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, fmt.Errorf("memory: claim %s: %w", key, persistence.ErrClosed)
	}
	now := time.Now()
	if c, ok := s.kv[key]; ok && c.live(now) {
		return bytes.Clone(c.value), false, nil
	}
	c := claimed{value: bytes.Clone(value)}
	if c.value == nil {
		c.value = []byte{}
	}
	if ttl > 0 {
		c.expireAt = now.Add(ttl)
	}
	s.kv[key] = c
	return bytes.Clone(c.value), true, nil
}

// Release implements persistence.Store.
func (s *Store) Release(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: release %s: %w", key, persistence.ErrClosed)
	}
	if c, ok := s.kv[key]; ok && bytes.Equal(c.value, value) {
		delete(s.kv, key)
	}
	return nil
}

// Ping implements persistence.Store.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("memory: ping: %w", persistence.ErrClosed)
	}
	return nil
}

// Close implements persistence.Store; it drops every record.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.orders = nil
	s.created = nil
	s.kv = nil
	return nil
}
