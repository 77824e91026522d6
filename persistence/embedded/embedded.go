// Package embedded is fanflow's default durable persistence.Store: one
// bbolt file, fanflow.db, in a data directory. Each Save batch is one bbolt
// transaction and so one fsync, which is what makes group commit pay.
//
// Layout (all keys big-endian so byte order is time order):
//
//	orders   orderId → header + snapshot JSON (header: see meta)
//	active   deadline unix ms + orderId → nil      (running orders)
//	created  creation unix ms + orderId → nil      (listing, newest first)
//	expiry   expireAt unix ns + orderId → nil      (finished orders with ExpireAt)
//	kv       key → expireAt unix ns (0: never) + value   (Claim; no index)
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/internal/claim"
	"github.com/fanflow/fanflow/persistence/internal/cursor"
)

// FileName is the name of the database file inside the data directory.
const FileName = "fanflow.db"

var (
	bucketOrders  = []byte("orders")
	bucketActive  = []byte("active")
	bucketCreated = []byte("created")
	bucketExpiry  = []byte("expiry")
	bucketKV      = []byte("kv")
)

// chunk is how many index entries one read transaction of Active or one
// write transaction of Expire handles; a variable so that tests can make
// chunk boundaries frequent.
var chunk = 1024

// Options configures Open. Zero values take the defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock when another process
	// holds the database; default 1s.
	Timeout time.Duration
	// FileMode is the permission of a new database file; default 0600.
	FileMode os.FileMode
}

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}
}

// Store is a bbolt-backed persistence.Store. It is safe for concurrent use;
// bbolt serialises writers and lets readers run alongside them.
type Store struct {
	db *bolt.DB
}

var _ persistence.Store = (*Store)(nil)

// Open opens (creating if needed) dir and the database file dir/fanflow.db.
// Only one process may have it open; Open fails after opts.Timeout otherwise.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: open: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, opts.FileMode, &bolt.Options{
		Timeout:        opts.Timeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketOrders, bucketActive, bucketCreated, bucketExpiry, bucketKV} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// meta is the fixed header stored before each snapshot's JSON, so that the
// version guard and the indexes never decode JSON:
//
//	[0]     format (1)
//	[1:9]   version
//	[9]     status
//	[10:18] createdAt unix ns
//	[18:26] deadline unix ns
//	[26:34] expireAt unix ns (0: never)
type meta struct {
	version   uint64
	status    order.Status
	createdAt time.Time
	deadline  time.Time
	expireAt  time.Time
}

const (
	headerFormat = 1
	headerLen    = 34
)

func metaOf(r persistence.Record) meta {
	m := meta{version: r.Version, status: r.Status, createdAt: r.CreatedAt, deadline: r.Deadline}
	if r.Status.Terminal() {
		m.expireAt = r.ExpireAt
	}
	return m
}

func nanos(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromNanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func encode(m meta, data []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(data))
	b[0] = headerFormat
	binary.BigEndian.PutUint64(b[1:], m.version)
	b[9] = byte(m.status)
	binary.BigEndian.PutUint64(b[10:], nanos(m.createdAt))
	binary.BigEndian.PutUint64(b[18:], nanos(m.deadline))
	binary.BigEndian.PutUint64(b[26:], nanos(m.expireAt))
	return append(b, data...)
}

func decode(id string, v []byte) (meta, error) {
	if len(v) < headerLen || v[0] != headerFormat {
		return meta{}, fmt.Errorf("embedded: order %s: bad record header", id)
	}
	return meta{
		version:   binary.BigEndian.Uint64(v[1:]),
		status:    order.Status(v[9]),
		createdAt: fromNanos(binary.BigEndian.Uint64(v[10:])),
		deadline:  fromNanos(binary.BigEndian.Uint64(v[18:])),
		expireAt:  fromNanos(binary.BigEndian.Uint64(v[26:])),
	}, nil
}

func record(id string, v []byte) (persistence.Record, error) {
	m, err := decode(id, v)
	if err != nil {
		return persistence.Record{}, err
	}
	return persistence.Record{
		OrderID:   id,
		Version:   m.version,
		Status:    m.status,
		CreatedAt: m.createdAt,
		Deadline:  m.deadline,
		ExpireAt:  m.expireAt,
		Data:      bytes.Clone(v[headerLen:]),
	}, nil
}

// indexKey is an 8-byte big-endian time (sign bit flipped so that negative
// values sort first) followed by the order id.
func indexKey(t int64, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t)^(1<<63))
	return append(k, id...)
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)) }

// keys returns m's entry in each index; nil where it has none.
func (m meta) keys(id string) (active, created, expiry []byte) {
	created = indexKey(m.createdAt.UnixMilli(), id)
	switch {
	case !m.status.Terminal():
		active = indexKey(m.deadline.UnixMilli(), id)
	case !m.expireAt.IsZero():
		expiry = indexKey(m.expireAt.UnixNano(), id)
	}
	return active, created, expiry
}

// move replaces index key old by new in b; either may be nil.
func move(b *bolt.Bucket, old, new []byte) error {
	if bytes.Equal(old, new) {
		return nil
	}
	if old != nil {
		if err := b.Delete(old); err != nil {
			return err
		}
	}
	if new != nil {
		return b.Put(new, nil)
	}
	return nil
}

// fail wraps err for operation op, mapping a closed database to ErrClosed.
func fail(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = persistence.ErrClosed
	}
	return fmt.Errorf("embedded: %s: %w", op, err)
}

// Save implements persistence.Store with one bbolt transaction (one fsync)
// for the whole batch.
func (s *Store) Save(ctx context.Context, batch []persistence.Record) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: save: %w", err)
	}
	var stale []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		orders, active, created, expiry := tx.Bucket(bucketOrders), tx.Bucket(bucketActive), tx.Bucket(bucketCreated), tx.Bucket(bucketExpiry)
		for _, r := range batch {
			ok, err := put(orders, active, created, expiry, r)
			if err != nil {
				return fmt.Errorf("%s: %w", r.OrderID, err)
			}
			if !ok {
				stale = append(stale, r.OrderID)
			}
		}
		return nil
	})
	if err != nil {
		return fail("save", err)
	}
	if stale != nil {
		return &persistence.StaleError{OrderIDs: stale}
	}
	return nil
}

// put writes r unless the stored version is the same or newer, in which case
// it reports false; the identical snapshot again is a successful no-op.
func put(orders, active, created, expiry *bolt.Bucket, r persistence.Record) (bool, error) {
	id := []byte(r.OrderID)
	var oldActive, oldCreated, oldExpiry []byte
	if v := orders.Get(id); v != nil {
		old, err := decode(r.OrderID, v)
		if err != nil {
			return false, err
		}
		if old.version == r.Version && bytes.Equal(v[headerLen:], r.Data) {
			return true, nil // the same snapshot again
		}
		if old.version >= r.Version {
			return false, nil
		}
		oldActive, oldCreated, oldExpiry = old.keys(r.OrderID)
	}
	m := metaOf(r)
	newActive, newCreated, newExpiry := m.keys(r.OrderID)
	if err := orders.Put(id, encode(m, r.Data)); err != nil {
		return false, err
	}
	if err := move(active, oldActive, newActive); err != nil {
		return false, err
	}
	if err := move(created, oldCreated, newCreated); err != nil {
		return false, err
	}
	return true, move(expiry, oldExpiry, newExpiry)
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, orderID string) (persistence.Record, error) {
	var r persistence.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOrders).Get([]byte(orderID))
		if v == nil {
			return persistence.ErrNotFound
		}
		var err error
		r, err = record(orderID, v)
		return err
	})
	if err != nil {
		return persistence.Record{}, fail("load "+orderID, err)
	}
	return r, nil
}

// LoadMany implements persistence.Store with one read transaction.
func (s *Store) LoadMany(ctx context.Context, orderIDs []string) ([]persistence.Record, error) {
	if len(orderIDs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: load %d orders: %w", len(orderIDs), err)
	}
	found := make([]persistence.Record, 0, len(orderIDs))
	err := s.db.View(func(tx *bolt.Tx) error {
		orders := tx.Bucket(bucketOrders)
		for _, id := range orderIDs {
			v := orders.Get([]byte(id))
			if v == nil {
				continue
			}
			r, err := record(id, v)
			if err != nil {
				return err
			}
			found = append(found, r)
		}
		return nil
	})
	if err != nil {
		return nil, fail(fmt.Sprintf("load %d orders", len(orderIDs)), err)
	}
	return found, nil
}

// List implements persistence.Store by walking the created index backwards
// inside one read transaction, reading only the headers of orders it skips.
func (s *Store) List(ctx context.Context, q persistence.Query) (persistence.Page, error) {
	after, ok, err := cursor.Decode(q.Cursor)
	if err != nil {
		return persistence.Page{}, fmt.Errorf("embedded: list: %w", err)
	}
	limit := q.Limit
	if limit < 1 {
		limit = 100
	}
	var page persistence.Page
	err = s.db.View(func(tx *bolt.Tx) error {
		orders := tx.Bucket(bucketOrders)
		c := tx.Bucket(bucketCreated).Cursor()
		var k []byte
		switch {
		case !ok:
			k, _ = c.Last()
		default:
			// Seek finds the first key >= the cursor's; the one before it
			// is the next in newest-first order.
			if k, _ = c.Seek(indexKey(after.MS, after.ID)); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		for ; k != nil; k, _ = c.Prev() {
			id := string(k[8:])
			v := orders.Get(k[8:])
			m, err := decode(id, v)
			if err != nil {
				return err
			}
			if q.Status != 0 && m.status != q.Status {
				continue
			}
			if len(page.Records) == limit {
				last := page.Records[limit-1]
				page.Next = cursor.Encode(cursor.Pos{MS: last.CreatedAt.UnixMilli(), ID: last.OrderID})
				return nil
			}
			r, err := record(id, v)
			if err != nil {
				return err
			}
			page.Records = append(page.Records, r)
		}
		return nil
	})
	if err != nil {
		return persistence.Page{}, fail("list", err)
	}
	return page, nil
}

// Active implements persistence.Store. It reads the index in chunks, each in
// its own read transaction, and calls fn outside any transaction, so fn may
// use the store.
func (s *Store) Active(ctx context.Context, fn func(orderID string, deadline time.Time) error) error {
	type entry struct {
		key []byte
		at  time.Time
	}
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var entries []entry
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketActive).Cursor()
			k, _ := c.Seek(from)
			if from != nil && bytes.Equal(k, from) {
				k, _ = c.Next()
			}
			for ; k != nil && len(entries) < chunk; k, _ = c.Next() {
				entries = append(entries, entry{bytes.Clone(k), time.UnixMilli(keyTime(k)).UTC()})
			}
			return nil
		})
		if err != nil {
			return fail("active", err)
		}
		for _, e := range entries {
			if err := fn(string(e.key[8:]), e.at); err != nil {
				return err
			}
		}
		if len(entries) < chunk {
			return nil
		}
		from = entries[len(entries)-1].key
	}
}

// Expire implements persistence.Store: it deletes finished orders whose
// ExpireAt is not after now, chunk by chunk, one transaction per chunk, and
// then the claims (see Claim) whose expiry is not after now, which it does
// not count. The claims have no expiry index: Expire reads every entry of
// the kv bucket, in read transactions, and writes only where some are due.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	total, err := s.expireOrders(ctx, now)
	if err != nil {
		return total, err
	}
	return total, s.expireClaims(ctx, now)
}

func (s *Store) expireOrders(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			orders, created, expiry := tx.Bucket(bucketOrders), tx.Bucket(bucketCreated), tx.Bucket(bucketExpiry)
			var due [][]byte
			c := expiry.Cursor()
			for k, _ := c.First(); k != nil && len(due) < chunk && keyTime(k) <= now.UnixNano(); k, _ = c.Next() {
				due = append(due, bytes.Clone(k))
			}
			for _, k := range due {
				id := k[8:]
				if v := orders.Get(id); v != nil {
					m, err := decode(string(id), v)
					if err != nil {
						return err
					}
					if err := created.Delete(indexKey(m.createdAt.UnixMilli(), string(id))); err != nil {
						return err
					}
					if err := orders.Delete(id); err != nil {
						return err
					}
				}
				if err := expiry.Delete(k); err != nil {
					return err
				}
			}
			n = len(due)
			return nil
		})
		total += n
		if err != nil {
			return total, fail("expire", err)
		}
		if n < chunk {
			return total, nil
		}
	}
}

// kvEntry encodes a claim's value in the kv bucket: expireAt unix ns (0:
// never) big-endian, then the value.
func kvEntry(expireAt int64, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(expireAt))
	return append(b, value...)
}

// kvLive reports whether the kv entry v (of key) has not expired at now
// (unix ns).
func kvLive(key []byte, v []byte, now int64) (bool, error) {
	if len(v) < 8 {
		return false, fmt.Errorf("key %s: bad kv entry", key)
	}
	at := int64(binary.BigEndian.Uint64(v))
	return at == 0 || at > now, nil
}

// expireClaims deletes the kv entries due at now: it reads up to chunk due
// keys in a read transaction, deletes those still due in a write
// transaction, and goes on from there until the bucket ends.
func (s *Store) expireClaims(ctx context.Context, now time.Time) error {
	due := now.UnixNano()
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys [][]byte
		end := false
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketKV).Cursor()
			k, v := c.Seek(from)
			if from != nil && bytes.Equal(k, from) {
				k, v = c.Next()
			}
			for ; k != nil && len(keys) < chunk; k, v = c.Next() {
				live, err := kvLive(k, v, due)
				if err != nil {
					return err
				}
				if !live {
					keys = append(keys, bytes.Clone(k))
				}
			}
			end = k == nil
			return nil
		})
		if err != nil {
			return fail("expire", err)
		}
		if len(keys) > 0 {
			err = s.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketKV)
				for _, k := range keys {
					// A claim made since the read may have replaced it.
					v := b.Get(k)
					if v == nil {
						continue
					}
					live, err := kvLive(k, v, due)
					if err != nil {
						return err
					}
					if !live {
						if err := b.Delete(k); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return fail("expire", err)
			}
		}
		if end {
			return nil
		}
		from = keys[len(keys)-1]
	}
}

// liveClaim returns the value key holds in b if it has not expired at now.
func liveClaim(b *bolt.Bucket, key []byte, now time.Time) ([]byte, bool, error) {
	v := b.Get(key)
	if v == nil {
		return nil, false, nil
	}
	live, err := kvLive(key, v, now.UnixNano())
	if err != nil || !live {
		return nil, false, err
	}
	return bytes.Clone(v[8:]), true, nil
}

// Claim implements persistence.Store. A key that holds a live value is
// answered from a read transaction; otherwise one write transaction checks
// again and stores value (one fsync; bbolt serialises it with every other
// write). Expiry follows the wall clock, read inside the transaction; an
// expired value counts as absent and is overwritten.
func (s *Store) Claim(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := claim.Check(key, ttl); err != nil {
		return nil, false, fmt.Errorf("embedded: claim %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("embedded: claim %s: %w", key, err)
	}
	var held []byte
	var live bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		held, live, err = liveClaim(tx.Bucket(bucketKV), []byte(key), time.Now())
		return err
	})
	if err != nil {
		return nil, false, fail("claim "+key, err)
	}
	if live {
		return held, false, nil
	}
	won := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := time.Now()
		var err error
		if held, live, err = liveClaim(b, []byte(key), now); err != nil || live {
			return err
		}
		expireAt := int64(0)
		if ttl > 0 {
			expireAt = now.UnixNano() + min(int64(ttl), math.MaxInt64-now.UnixNano())
		}
		if err := b.Put([]byte(key), kvEntry(expireAt, value)); err != nil {
			return err
		}
		held, won = bytes.Clone(value), true
		return nil
	})
	if err != nil {
		return nil, false, fail("claim "+key, err)
	}
	return held, won, nil
}

// Release implements persistence.Store: compare and delete in one write
// transaction, which only runs when a read transaction found key holding
// value (a write transaction costs an fsync even when it changes nothing).
func (s *Store) Release(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: release %s: %w", key, err)
	}
	holds := func(b *bolt.Bucket) bool {
		v := b.Get([]byte(key))
		return len(v) >= 8 && bytes.Equal(v[8:], value)
	}
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		found = holds(tx.Bucket(bucketKV))
		return nil
	})
	if err == nil && found {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketKV); holds(b) {
				return b.Delete([]byte(key))
			}
			return nil
		})
	}
	if err != nil {
		return fail("release "+key, err)
	}
	return nil
}

// Ping implements persistence.Store: it fails only once the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fail("ping", err)
	}
	return nil
}

// Close implements persistence.Store. It waits for running transactions.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }
