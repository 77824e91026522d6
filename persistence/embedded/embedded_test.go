package embedded_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/embedded"
	"github.com/fanflow/fanflow/persistence/storetest"
)

func open(t testing.TB) *embedded.Store { return openDir(t, t.TempDir()) }

func openDir(t testing.TB, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store { return open(t) }, storetest.Features{})
}

// TestStore_smallChunks runs the suite with many chunks in Active and Expire.
func TestStore_smallChunks(t *testing.T) {
	defer embedded.SetChunk(1)()
	storetest.Run(t, func(t *testing.T) persistence.Store { return open(t) }, storetest.Features{})
}

func testRecord(t *testing.T, id string, version uint64, status order.Status) persistence.Record {
	t.Helper()
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := order.Order{Schema: order.SchemaVersion, OrderID: id, Status: status, Version: version,
		CreatedAt: created, UpdatedAt: created, Deadline: created.Add(time.Minute)}
	data, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	return persistence.RecordOf(&o, data, time.Hour)
}

func TestOpen_createsDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if want := filepath.Join(dir, embedded.FileName); s.Path() != want {
		t.Errorf("Path = %s, want %s", s.Path(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "fanflow.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestStore_survivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	run, done := testRecord(t, "o-run", 2, order.Running), testRecord(t, "o-done", 5, order.Completed)
	if err := s.Save(t.Context(), []persistence.Record{run, done}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.Load(t.Context(), "o-done")
	if err != nil || got.Version != 5 || !bytes.Equal(got.Data, done.Data) || !got.ExpireAt.Equal(done.ExpireAt) {
		t.Errorf("Load after reopen = v%d expire %v, %v; want v5 expire %v", got.Version, got.ExpireAt, err, done.ExpireAt)
	}
	var active []string
	s.Active(t.Context(), func(id string, _ time.Time) error { active = append(active, id); return nil })
	if len(active) != 1 || active[0] != "o-run" {
		t.Errorf("Active after reopen = %v, want [o-run]", active)
	}
	if err := s.Save(t.Context(), []persistence.Record{testRecord(t, "o-run", 1, order.Completed)}); !errors.Is(err, persistence.ErrStale) {
		t.Errorf("stale Save after reopen: %v, want ErrStale", err)
	}
}

func TestOpen_failsWhileAnotherStoreHoldsTheFile(t *testing.T) {
	dir := t.TempDir()
	openDir(t, dir)
	if _, err := embedded.Open(dir, embedded.Options{Timeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("second Open of a held database succeeded")
	}
}

// BenchmarkWrites: go test -run '^$' -bench Writes ./persistence/embedded/
func BenchmarkWrites(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) persistence.Store { return open(b) })
}

func TestClaim_survivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, won, err := s.Claim(t.Context(), "secret", []byte("s3cr3t"), 0); err != nil || !won {
		t.Fatalf("Claim: won %v, %v", won, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openDir(t, dir)
	if held, won, err := s.Claim(t.Context(), "secret", []byte("other"), 0); err != nil || won || string(held) != "s3cr3t" {
		t.Errorf("Claim after reopen = %q, won %v, %v; want \"s3cr3t\" held", held, won, err)
	}
}

// TestExpire_sweepsClaimsAcrossChunks: Expire deletes exactly the due
// claims, whatever the chunk boundaries.
func TestExpire_sweepsClaimsAcrossChunks(t *testing.T) {
	for _, n := range []int{1, 3, 1024} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer embedded.SetChunk(n)()
			s := open(t)
			ctx := t.Context()
			for i := range 20 {
				ttl := time.Duration(0)
				if i%2 == 0 || i >= 15 {
					ttl = time.Hour
				}
				if _, won, err := s.Claim(ctx, fmt.Sprintf("k%02d", i), []byte("v"), ttl); err != nil || !won {
					t.Fatalf("Claim k%02d: won %v, %v", i, won, err)
				}
			}
			if got, err := s.Expire(ctx, time.Now().Add(2*time.Hour)); err != nil || got != 0 {
				t.Fatalf("Expire = %d, %v; want 0 (no orders)", got, err)
			}
			for i := range 20 {
				due := i%2 == 0 || i >= 15
				_, won, err := s.Claim(ctx, fmt.Sprintf("k%02d", i), []byte("w"), 0)
				if err != nil || won != due {
					t.Errorf("Claim k%02d after Expire: won %v, %v; want won %v", i, won, err, due)
				}
			}
		})
	}
}
