package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fanflow/fanflow/order"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/redisstore"
	"github.com/fanflow/fanflow/persistence/redisstore/redistest"
	"github.com/fanflow/fanflow/persistence/storetest"
)

func open(t testing.TB, srv *redistest.Server) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{URL: srv.URL()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store {
		return open(t, redistest.Start(t))
	}, storetest.Features{NativeExpiry: true})
}

// TestStore_smallChunks runs the suite with chunk boundaries falling inside
// runs of equal scores.
func TestStore_smallChunks(t *testing.T) {
	defer redisstore.SetChunk(4)()
	storetest.Run(t, func(t *testing.T) persistence.Store {
		return open(t, redistest.Start(t))
	}, storetest.Features{NativeExpiry: true})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func record(t *testing.T, id string, version uint64, status order.Status, expireAt time.Time) persistence.Record {
	t.Helper()
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := order.Order{Schema: order.SchemaVersion, OrderID: id, Status: status, Version: version,
		CreatedAt: created, UpdatedAt: created, Deadline: created.Add(time.Minute)}
	data, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	r := persistence.RecordOf(&o, data, 0)
	r.ExpireAt = expireAt
	return r
}

func TestStore_keyLayoutForOperators(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	s := redisstore.NewFromClient(rdb, "ff")
	ctx := testCtx(t)

	expireAt := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	run := record(t, "o-run", 3, order.Running, time.Time{})
	done := record(t, "o-done", 7, order.Completed, expireAt)
	if err := s.Save(ctx, []persistence.Record{run, done}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for _, r := range []persistence.Record{run, done} {
		if got, err := rdb.Get(ctx, "ff:order:"+r.OrderID).Bytes(); err != nil || string(got) != string(r.Data) {
			t.Errorf("GET ff:order:%s = %s, %v; want the snapshot verbatim", r.OrderID, got, err)
		}
		if got, err := rdb.Get(ctx, "ff:ver:"+r.OrderID).Uint64(); err != nil || got != r.Version {
			t.Errorf("GET ff:ver:%s = %d, %v; want %d", r.OrderID, got, err, r.Version)
		}
		if got, err := rdb.ZScore(ctx, "ff:orders", r.OrderID).Result(); err != nil || int64(got) != r.CreatedAt.UnixMilli() {
			t.Errorf("ZSCORE ff:orders %s = %v, %v; want %d", r.OrderID, got, err, r.CreatedAt.UnixMilli())
		}
	}
	if got, err := rdb.ZRangeWithScores(ctx, "ff:active", 0, -1).Result(); err != nil || len(got) != 1 ||
		got[0].Member != "o-run" || int64(got[0].Score) != run.Deadline.UnixMilli() {
		t.Errorf("ZRANGE ff:active = %v, %v; want o-run scored %d", got, err, run.Deadline.UnixMilli())
	}
	for _, key := range []string{"ff:order:o-run", "ff:ver:o-run"} {
		if got := rdb.PExpireTime(ctx, key).Val(); got != -1 {
			t.Errorf("PEXPIRETIME %s = %v, want none (running)", key, got)
		}
	}
	for _, key := range []string{"ff:order:o-done", "ff:ver:o-done"} {
		if got := rdb.PExpireTime(ctx, key).Val(); got != time.Duration(expireAt.UnixMilli())*time.Millisecond {
			t.Errorf("PEXPIRETIME %s = %v, want %d ms", key, got.Milliseconds(), expireAt.UnixMilli())
		}
	}
	if n := rdb.Exists(ctx, "fanflow:orders", "fanflow:active").Val(); n != 0 {
		t.Errorf("%d keys under the default prefix, want none", n)
	}
	// NewFromClient's store does not own the client.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("client after Store.Close: %v", err)
	}
}

func TestStore_serverDownIsUnavailableThenRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redisstore.New(redisstore.Options{URL: srv.URL() + "?max_retries=-1"}) // fail fast
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testCtx(t)
	if err := s.Save(ctx, []persistence.Record{record(t, "o-1", 1, order.Running, time.Time{})}); err != nil {
		t.Fatalf("Save: %v", err)
	}

	srv.Kill()
	err = s.Save(ctx, []persistence.Record{record(t, "o-2", 1, order.Running, time.Time{})})
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "o-2") {
		t.Errorf("Save with the server down: %v, want ErrUnavailable naming o-2", err)
	}
	if _, err := s.Load(ctx, "o-1"); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Load with the server down: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Ping with the server down: %v, want ErrUnavailable", err)
	}

	// A new server has an empty script cache: Save must load the script.
	srv.Restart()
	if err := s.Save(ctx, []persistence.Record{record(t, "o-2", 1, order.Running, time.Time{}), record(t, "o-3", 1, order.Running, time.Time{})}); err != nil {
		t.Fatalf("Save after restart: %v", err)
	}
	if _, err := s.Load(ctx, "o-3"); err != nil {
		t.Errorf("Load after restart: %v", err)
	}
}

func TestStore_aofSurvivesKill(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := open(t, srv)
	ctx := testCtx(t)
	want := record(t, "o-1", 4, order.Running, time.Time{})
	if err := s.Save(ctx, []persistence.Record{want}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	srv.Kill()
	srv.Restart()
	got, err := s.Load(ctx, "o-1")
	if err != nil || got.Version != 4 || string(got.Data) != string(want.Data) {
		t.Fatalf("Load after kill -9 and restart: v%d, %v; want v4", got.Version, err)
	}
	if err := s.Save(ctx, []persistence.Record{record(t, "o-1", 4, order.Completed, time.Time{})}); !errors.Is(err, persistence.ErrStale) {
		t.Errorf("Save of the same version after restart: %v, want ErrStale", err)
	}
}

func TestStore_expireSweepsIDsOfGoneSnapshots(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := testCtx(t)

	past := time.Now().Add(-time.Second)
	batch := []persistence.Record{record(t, "o-live", 1, order.Running, time.Time{})}
	for i := range 10 {
		batch = append(batch, record(t, fmt.Sprintf("o-gone-%d", i), 2, order.Completed, past))
	}
	if err := s.Save(ctx, batch); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if n := rdb.ZCard(ctx, "fanflow:orders").Val(); n != 11 {
		t.Fatalf("ZCARD fanflow:orders = %d before Expire, want 11", n)
	}
	n, err := s.Expire(ctx, time.Now())
	if err != nil || n != 10 {
		t.Errorf("Expire = %d, %v; want 10", n, err)
	}
	if ids := rdb.ZRange(ctx, "fanflow:orders", 0, -1).Val(); len(ids) != 1 || ids[0] != "o-live" {
		t.Errorf("fanflow:orders after Expire = %v, want [o-live]", ids)
	}

	// List drops gone ids it passes over.
	rdb.ZAdd(ctx, "fanflow:orders", redis.Z{Score: 1, Member: "o-gone-0"})
	if _, err := s.List(ctx, persistence.Query{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := rdb.ZCard(ctx, "fanflow:orders").Val(); n != 1 {
		t.Errorf("ZCARD fanflow:orders after List = %d, want 1", n)
	}
}

func TestOptions_validateReportsEveryProblem(t *testing.T) {
	err := redisstore.Options{URL: "http://x", Prefix: "bad prefix"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "url") || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("Validate = %v, want both the url and the prefix reported", err)
	}
	if _, err := redisstore.New(redisstore.Options{URL: "http://x"}); err == nil {
		t.Error("New with a bad URL succeeded")
	}
	if err := (redisstore.Options{}).Validate(); err != nil {
		t.Errorf("Validate of the defaults: %v", err)
	}
}

// BenchmarkWrites runs against a redis-server without persistence, the
// tests' default: go test -run '^$' -bench Writes ./persistence/redisstore/
func BenchmarkWrites(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) persistence.Store { return open(b, redistest.Start(b)) })
}

// BenchmarkWritesAOFAlways runs against a redis-server that fsyncs its
// append-only file on every write, durable like the embedded store.
func BenchmarkWritesAOFAlways(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) persistence.Store {
		return open(b, redistest.Start(b, "--appendonly", "yes", "--appendfsync", "always"))
	})
}

func TestClaim_keyLayoutForOperators(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	s := redisstore.NewFromClient(rdb, "ff")
	ctx := testCtx(t)

	if _, won, err := s.Claim(ctx, "secret", []byte("s3cr3t"), 0); err != nil || !won {
		t.Fatalf("Claim secret: won %v, %v", won, err)
	}
	if _, won, err := s.Claim(ctx, "idem:abc", []byte("ord-1"), time.Hour); err != nil || !won {
		t.Fatalf("Claim idem:abc: won %v, %v", won, err)
	}
	// A ttl under a millisecond is rounded up, not down to PX 0 (an error).
	if _, won, err := s.Claim(ctx, "tiny", []byte("v"), time.Microsecond); err != nil || !won {
		t.Fatalf("Claim with a 1µs ttl: won %v, %v", won, err)
	}
	if got, err := rdb.Get(ctx, "ff:kv:secret").Result(); err != nil || got != "s3cr3t" {
		t.Errorf("GET ff:kv:secret = %q, %v; want the value verbatim", got, err)
	}
	if got := rdb.PTTL(ctx, "ff:kv:secret").Val(); got != -1 {
		t.Errorf("PTTL ff:kv:secret = %v, want none (ttl 0)", got)
	}
	if got := rdb.PTTL(ctx, "ff:kv:idem:abc").Val(); got <= time.Hour-time.Minute || got > time.Hour {
		t.Errorf("PTTL ff:kv:idem:abc = %v, want 1h or a little less", got)
	}
	if err := s.Release(ctx, "idem:abc", []byte("ord-1")); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := rdb.Exists(ctx, "ff:kv:idem:abc").Val(); n != 0 {
		t.Errorf("ff:kv:idem:abc exists after Release")
	}
}

func TestClaim_serverDownIsUnavailableThenRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redisstore.New(redisstore.Options{URL: srv.URL() + "?max_retries=-1"}) // fail fast
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testCtx(t)

	srv.Kill()
	if _, _, err := s.Claim(ctx, "idem-1", []byte("v"), time.Minute); !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "idem-1") {
		t.Errorf("Claim with the server down: %v, want ErrUnavailable naming the key", err)
	}
	if err := s.Release(ctx, "idem-1", []byte("v")); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("Release with the server down: %v, want ErrUnavailable", err)
	}

	// A new server has an empty script cache: Release must load its script.
	srv.Restart()
	if _, won, err := s.Claim(ctx, "idem-1", []byte("v"), time.Minute); err != nil || !won {
		t.Fatalf("Claim after restart: won %v, %v", won, err)
	}
	if err := s.Release(ctx, "idem-1", []byte("v")); err != nil {
		t.Fatalf("Release after restart: %v", err)
	}
	if held, won, err := s.Claim(ctx, "idem-1", []byte("w"), 0); err != nil || !won || string(held) != "w" {
		t.Errorf("Claim after Release = %q, won %v, %v; want \"w\", won", held, won, err)
	}
}
