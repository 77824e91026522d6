// Package redisstore is a persistence.Store on Redis (7.0 or newer), laid out
// for operators to read with redis-cli. With the default prefix "fanflow":
//
//	fanflow:order:{orderId}  string: the order's JSON snapshot, verbatim
//	fanflow:ver:{orderId}    string: its version, for the version guard
//	fanflow:active           sorted set: running orderIds scored by deadline (unix ms)
//	fanflow:orders           sorted set: all orderIds scored by creation (unix ms)
//	fanflow:kv:{key}         string: the value claimed for key (Claim), with the
//	                         claim's ttl as its expiry (none when the ttl is 0)
//
// A finished order with an ExpireAt gets it as the absolute expiry (PXAT) of
// its two keys, and leaves fanflow:active; Redis forgets it by itself. Its id
// stays in fanflow:orders until List passes over it or Expire sweeps it.
//
// Each record is written by one Lua script that compares versions and
// writes the snapshot and indexes only if the new version is greater, so
// the guard is atomic per order; a Save batch is one pipeline of script
// calls, one round trip. Versions are compared as Lua numbers, exact up to
// 2^53.
//
// The keys of one order span several hash slots, so Redis Cluster needs a
// prefix with a hash tag, e.g. "{fanflow}", which puts every key on one node.
package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/internal/claim"
	"github.com/fanflow/fanflow/persistence/internal/cursor"
)

// Defaults of Options.
const (
	DefaultURL    = "redis://127.0.0.1:6379/0"
	DefaultPrefix = "fanflow"
)

// chunk is how many sorted-set members one List, Active or Expire step
// reads; a variable so that tests can make chunk boundaries frequent.
var chunk = 256

// Options configures New. Zero values take the defaults.
type Options struct {
	// URL locates the server, as redis.ParseURL reads it:
	// redis://[user:password@]host:port/db, or rediss:// for TLS, with
	// client options as query parameters (dial_timeout, read_timeout,
	// pool_size, …); default "redis://127.0.0.1:6379/0".
	URL string
	// Prefix starts every key; default "fanflow".
	Prefix string
}

func (o *Options) setDefaults() {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.URL != "" {
		if _, err := redis.ParseURL(o.URL); err != nil {
			errs = append(errs, fmt.Errorf("redisstore: url: %w", err))
		}
	}
	if strings.ContainsAny(o.Prefix, " \t\r\n") {
		errs = append(errs, fmt.Errorf("redisstore: prefix %q contains white space", o.Prefix))
	}
	return errors.Join(errs...)
}

// Store is a persistence.Store on a go-redis client. It is safe for
// concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	owned  bool // Close closes rdb
	closed atomic.Bool

	orderPrefix, verPrefix, active, orders, kvPrefix string
}

var _ persistence.Store = (*Store)(nil)

// New returns a Store with its own client. It does not connect: the first
// command or Ping does.
func New(opts Options) (*Store, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: url: %w", err)
	}
	s := NewFromClient(redis.NewClient(ropts), opts.Prefix)
	s.owned = true
	return s, nil
}

// NewFromClient returns a Store on an existing client, with key prefix
// prefix ("" means "fanflow"). Close does not close the client.
func NewFromClient(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{
		rdb:         rdb,
		orderPrefix: prefix + ":order:",
		verPrefix:   prefix + ":ver:",
		active:      prefix + ":active",
		orders:      prefix + ":orders",
		kvPrefix:    prefix + ":kv:",
	}
}

// fail wraps err for operation op: a closed client becomes ErrClosed, and
// anything but a reply error from the server (connection refused, reset,
// timeout, pool exhausted) or a server that cannot serve now (LOADING,
// READONLY, MASTERDOWN, …) also wraps ErrUnavailable. The caller's own
// context errors are passed through.
func fail(op string, err error) error {
	var rerr redis.Error
	switch {
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redisstore: %s: %w", op, persistence.ErrClosed)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("redisstore: %s: %w", op, err)
	case errors.As(err, &rerr):
		for _, busy := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY"} {
			if redis.HasErrorPrefix(err, busy) {
				return fmt.Errorf("redisstore: %s: %w: %w", op, persistence.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("redisstore: %s: %w", op, err)
	default:
		return fmt.Errorf("redisstore: %s: %w: %w", op, persistence.ErrUnavailable, err)
	}
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("redisstore: %s: %w", op, persistence.ErrClosed)
	}
	return nil
}

// saveScript writes one snapshot if its version is newer than the stored
// one; the identical snapshot again counts as written, so that a write the
// client retried after a lost reply is not reported stale.
//
//	KEYS: order key, version key, active set, orders set
//	ARGV: version, data, expireAt unix ms ("0": never), running ("1"/"0"),
//	      deadline unix ms, created unix ms, orderId
//
// It returns 1 when written, 0 when stale.
var saveScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[2])
if cur then
  local c, v = tonumber(cur), tonumber(ARGV[1])
  if c > v then
    return 0
  end
  if c == v then
    -- The same snapshot again (a retried write) is not stale.
    if redis.call('GET', KEYS[1]) == ARGV[2] then
      return 1
    end
    return 0
  end
end
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  redis.call('SET', KEYS[2], ARGV[1], 'PXAT', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1])
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
else
  redis.call('ZREM', KEYS[3], ARGV[7])
end
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
return 1
`)

// pruneScript removes from the orders set (KEYS[1]) each id ARGV[i] whose
// snapshot key KEYS[i+1] no longer exists, and returns how many it removed.
// Checking inside the script keeps a snapshot saved meanwhile indexed.
var pruneScript = redis.NewScript(`
local n = 0
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    n = n + redis.call('ZREM', KEYS[1], id)
  end
end
return n
`)

// prune drops from the orders set those of ids whose snapshot is gone.
func (s *Store) prune(ctx context.Context, ids []string) (int, error) {
	keys := make([]string, 1, len(ids)+1)
	keys[0] = s.orders
	args := make([]any, len(ids))
	for i, id := range ids {
		keys = append(keys, s.orderPrefix+id)
		args[i] = id
	}
	return pruneScript.Run(ctx, s.rdb, keys, args...).Int()
}

func (s *Store) saveArgs(r persistence.Record) (keys []string, args []any) {
	expireAt, running := int64(0), "1"
	if r.Status.Terminal() {
		running = "0"
		if !r.ExpireAt.IsZero() {
			expireAt = max(r.ExpireAt.UnixMilli(), 1) // PXAT must be positive
		}
	}
	keys = []string{s.orderPrefix + r.OrderID, s.verPrefix + r.OrderID, s.active, s.orders}
	args = []any{r.Version, r.Data, expireAt, running, r.Deadline.UnixMilli(), r.CreatedAt.UnixMilli(), r.OrderID}
	return keys, args
}

// Save implements persistence.Store: one pipeline of script calls.
func (s *Store) Save(ctx context.Context, batch []persistence.Record) error {
	if err := s.checkOpen("save"); err != nil {
		return err
	}
	todo := batch
	var stale []string
	// A second round only runs for records that met NOSCRIPT (the server's
	// script cache was empty, e.g. after a restart); it uses EVAL, which
	// also loads the script.
	for round := 0; len(todo) > 0; round++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(todo))
		for i, r := range todo {
			keys, args := s.saveArgs(r)
			if round == 0 {
				cmds[i] = saveScript.EvalSha(ctx, pipe, keys, args...)
			} else {
				cmds[i] = saveScript.Eval(ctx, pipe, keys, args...)
			}
		}
		pipe.Exec(ctx) // errors are read per command below
		var again []persistence.Record
		for i, cmd := range cmds {
			n, err := cmd.Int()
			switch {
			case err != nil && round == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				again = append(again, todo[i])
			case err != nil:
				return fail("save "+todo[i].OrderID, err)
			case n == 0:
				stale = append(stale, todo[i].OrderID)
			}
		}
		todo = again
	}
	if stale != nil {
		return &persistence.StaleError{OrderIDs: stale}
	}
	return nil
}

// meta is the part of a snapshot's JSON that a Record carries.
type meta struct {
	OrderID   string       `json:"orderId"`
	Status    order.Status `json:"status"`
	Version   uint64       `json:"version"`
	CreatedAt time.Time    `json:"createdAt"`
	Deadline  time.Time    `json:"deadline"`
}

// record builds a Record from a stored snapshot and its PEXPIRETIME reply.
func record(id string, data []byte, expireAt time.Duration) (persistence.Record, error) {
	m, err := metaOf(data)
	if err != nil {
		return persistence.Record{}, fmt.Errorf("redisstore: order %s: decode snapshot: %w", id, err)
	}
	r := persistence.Record{
		OrderID:   id,
		Version:   m.Version,
		Status:    m.Status,
		CreatedAt: m.CreatedAt,
		Deadline:  m.Deadline,
		Data:      data,
	}
	if expireAt > 0 {
		r.ExpireAt = time.UnixMilli(expireAt.Milliseconds()).UTC()
	}
	return r, nil
}

// fetch reads the snapshots of ids in one round trip; a missing one (expired
// or deleted) is left out and reported in gone.
func (s *Store) fetch(ctx context.Context, ids []string) (found []persistence.Record, gone []string, err error) {
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	exps := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, s.orderPrefix+id)
		exps[i] = pipe.PExpireTime(ctx, s.orderPrefix+id)
	}
	pipe.Exec(ctx)
	for i, id := range ids {
		data, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, id)
			continue
		}
		if err == nil {
			err = exps[i].Err()
		}
		if err != nil {
			return nil, nil, fail("load "+id, err)
		}
		r, err := record(id, data, exps[i].Val())
		if err != nil {
			return nil, nil, err
		}
		found = append(found, r)
	}
	return found, gone, nil
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, orderID string) (persistence.Record, error) {
	if err := s.checkOpen("load " + orderID); err != nil {
		return persistence.Record{}, err
	}
	found, _, err := s.fetch(ctx, []string{orderID})
	if err != nil {
		return persistence.Record{}, err
	}
	if len(found) == 0 {
		return persistence.Record{}, fmt.Errorf("redisstore: load %s: %w", orderID, persistence.ErrNotFound)
	}
	return found[0], nil
}

// LoadMany implements persistence.Store with one pipeline (a GET and a
// PEXPIRETIME per order).
func (s *Store) LoadMany(ctx context.Context, orderIDs []string) ([]persistence.Record, error) {
	if len(orderIDs) == 0 {
		return nil, nil
	}
	if err := s.checkOpen(fmt.Sprintf("load %d orders", len(orderIDs))); err != nil {
		return nil, err
	}
	found, _, err := s.fetch(ctx, orderIDs)
	return found, err
}

// walk calls fn with successive chunks of the sorted set key in (score,
// member) order, descending when rev, continuing strictly after the
// position from when it is not nil, until the set ends or fn returns false
// or an error. It pages by score, not by rank, so concurrent inserts and
// removals make it neither skip nor repeat members present throughout:
// after a chunk ending at score x it first reads the rest of the members
// scored x, then continues beyond x.
func (s *Store) walk(ctx context.Context, key string, rev bool, from *cursor.Pos, fn func([]redis.Z) (bool, error)) error {
	bound := func(ms int64, open bool) string {
		b := strconv.FormatInt(ms, 10)
		if open {
			b = "(" + b
		}
		return b
	}
	end := "+inf"
	if rev {
		end = "-inf"
	}
	for {
		start := "-inf"
		if rev {
			start = "+inf"
		}
		if from != nil {
			// The rest of the members sharing from's score.
			ties, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key: key, Start: bound(from.MS, false), Stop: bound(from.MS, false), ByScore: true, Rev: rev,
			}).Result()
			if err != nil {
				return err
			}
			for len(ties) > 0 && (rev && ties[0].Member.(string) >= from.ID || !rev && ties[0].Member.(string) <= from.ID) {
				ties = ties[1:]
			}
			if len(ties) > 0 {
				if more, err := fn(ties); err != nil || !more {
					return err
				}
			}
			start = bound(from.MS, true)
		}
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: start, Stop: end, ByScore: true, Rev: rev, Count: int64(chunk),
		}).Result()
		if err != nil {
			return err
		}
		if len(zs) == 0 {
			return nil
		}
		if more, err := fn(zs); err != nil || !more {
			return err
		}
		if len(zs) < chunk {
			return nil
		}
		last := zs[len(zs)-1]
		from = &cursor.Pos{MS: int64(last.Score), ID: last.Member.(string)}
	}
}

// List implements persistence.Store: it walks fanflow:orders newest first,
// reads the snapshots of each chunk in one round trip, filters them by the
// JSON's status, and drops the ids of snapshots that have expired from the
// index.
func (s *Store) List(ctx context.Context, q persistence.Query) (persistence.Page, error) {
	if err := s.checkOpen("list"); err != nil {
		return persistence.Page{}, err
	}
	after, ok, err := cursor.Decode(q.Cursor)
	if err != nil {
		return persistence.Page{}, fmt.Errorf("redisstore: list: %w", err)
	}
	var from *cursor.Pos
	if ok {
		from = &after
	}
	limit := q.Limit
	if limit < 1 {
		limit = 100
	}
	var page persistence.Page
	var pos []cursor.Pos // of page.Records
	var gone []string
	err = s.walk(ctx, s.orders, true, from, func(zs []redis.Z) (bool, error) {
		ids := make([]string, len(zs))
		score := make(map[string]int64, len(zs))
		for i, z := range zs {
			ids[i] = z.Member.(string)
			score[ids[i]] = int64(z.Score)
		}
		found, missing, err := s.fetch(ctx, ids)
		if err != nil {
			return false, err
		}
		gone = append(gone, missing...)
		for _, r := range found {
			if q.Status != 0 && r.Status != q.Status {
				continue
			}
			if len(page.Records) == limit {
				page.Next = cursor.Encode(pos[limit-1])
				return false, nil
			}
			page.Records = append(page.Records, r)
			pos = append(pos, cursor.Pos{MS: score[r.OrderID], ID: r.OrderID})
		}
		return true, nil
	})
	if err != nil {
		return persistence.Page{}, fail("list", err)
	}
	if len(gone) > 0 {
		// Best effort: a failure here only leaves work for the next pass.
		s.prune(ctx, gone)
	}
	return page, nil
}

// Active implements persistence.Store, reading fanflow:active in chunks;
// fn runs between reads, so it may use the store.
func (s *Store) Active(ctx context.Context, fn func(orderID string, deadline time.Time) error) error {
	if err := s.checkOpen("active"); err != nil {
		return err
	}
	var fnErr error
	err := s.walk(ctx, s.active, false, nil, func(zs []redis.Z) (bool, error) {
		for _, z := range zs {
			if fnErr = fn(z.Member.(string), time.UnixMilli(int64(z.Score)).UTC()); fnErr != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fail("active", err)
	}
	return fnErr
}

// Expire implements persistence.Store. Redis expires the snapshots by
// itself; Expire sweeps fanflow:orders once (ZSCAN, one script call per
// chunk) and removes the ids whose snapshot is gone, returning how many it
// removed. The sweep costs one EXISTS per stored order, so run it rarely
// (every few minutes); List also drops the gone ids it passes over. Claims
// expire by their Redis TTL; Expire does not touch them.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	if err := s.checkOpen("expire"); err != nil {
		return 0, err
	}
	removed := 0
	var ids []string
	flush := func() error {
		n, err := s.prune(ctx, ids)
		removed += n
		ids = ids[:0]
		return err
	}
	iter := s.rdb.ZScan(ctx, s.orders, 0, "", int64(chunk)).Iterator()
	// ZSCAN yields member, score, member, score, …
	for member := true; iter.Next(ctx); member = !member {
		if member {
			ids = append(ids, iter.Val())
		}
		if len(ids) == chunk {
			if err := flush(); err != nil {
				return removed, fail("expire", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return removed, fail("expire", err)
	}
	if len(ids) > 0 {
		if err := flush(); err != nil {
			return removed, fail("expire", err)
		}
	}
	return removed, nil
}

// Claim implements persistence.Store with one command,
// SET fanflow:kv:{key} value NX [PX ttl] GET: Redis stores value only if
// the key is absent (Redis forgets it once its ttl has passed) and replies
// with the value it held, or nil when it stored this one. The ttl is kept
// to the millisecond, rounded up.
//
// go-redis retries a command whose connection failed (max_retries in the
// URL); if the first attempt had stored value, the retry reports it held
// and won false.
func (s *Store) Claim(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := claim.Check(key, ttl); err != nil {
		return nil, false, fmt.Errorf("redisstore: claim %s: %w", key, err)
	}
	if err := s.checkOpen("claim " + key); err != nil {
		return nil, false, err
	}
	args := []any{"set", s.kvPrefix + key, value, "nx"}
	if ttl > 0 {
		ms := ttl / time.Millisecond
		if ttl%time.Millisecond != 0 {
			ms++
		}
		args = append(args, "px", int64(ms))
	}
	args = append(args, "get")
	old, err := s.rdb.Do(ctx, args...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return bytes.Clone(value), true, nil
	case err != nil:
		return nil, false, fail("claim "+key, err)
	}
	return []byte(old), false, nil
}

// releaseScript deletes KEYS[1] if it holds ARGV[1]; it returns how many
// keys it deleted.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Release implements persistence.Store with one script call (EVALSHA, or
// EVAL when the server's script cache is empty).
func (s *Store) Release(ctx context.Context, key string, value []byte) error {
	if err := s.checkOpen("release " + key); err != nil {
		return err
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.kvPrefix + key}, value).Err(); err != nil {
		return fail("release "+key, err)
	}
	return nil
}

// Ping implements persistence.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen("ping"); err != nil {
		return err
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fail("ping", err)
	}
	return nil
}

// Close implements persistence.Store. It closes the client if New made it;
// closing twice is harmless.
func (s *Store) Close() error {
	if s.closed.Swap(true) || !s.owned {
		return nil
	}
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}
