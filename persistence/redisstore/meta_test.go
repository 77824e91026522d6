package redisstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// snapshot is a realistic stored order's JSON.
func snapshot(t testing.TB) []byte {
	t.Helper()
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	done := created.Add(time.Second)
	o := order.Order{Schema: order.SchemaVersion, OrderID: "ord-1", Status: order.Failed, Version: 7,
		Parameters: json.RawMessage(`{"a":[1,{"b":"}]\"{["}],"version":99,"status":"running"}`),
		CreatedAt:  created, UpdatedAt: done, Deadline: created.Add(time.Minute), CompletedAt: &done,
		Error: &order.Error{Code: "job_failed", Message: `it said "no"`},
		Jobs: []order.Job{{JobID: "j1", Type: "A", Endpoint: "/a", Status: order.JobFailed, Attempts: 2,
			Result: json.RawMessage(`{"deadline":"x"}`), Error: json.RawMessage(`"boom"`)}}}
	data, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestMetaOf_readsWhatAFullDecodeReads(t *testing.T) {
	for name, data := range map[string][]byte{
		"snapshot":          snapshot(t),
		"white space":       []byte(" {\n \"orderId\" : \"o\" ,\t\"status\":\"completed\", \"version\": 3 ,\"createdAt\":\"2026-03-01T12:00:00Z\", \"jobs\" : [ ] , \"deadline\": null } \n"),
		"last one wins":     []byte(`{"version":1,"version":2,"orderId":"a","orderId":"b"}`),
		"case-folded name":  []byte(`{"OrderID":"o","VERSION":4}`),
		"escaped name":      []byte(`{"order\u0049d":"o","version":5}`),
		"empty":             []byte(`{}`),
		"escapes in values": []byte(`{"orderId":"o\"1\\","parameters":{"k":"\\\"}"},"version":6}`),
	} {
		t.Run(name, func(t *testing.T) {
			var want meta
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			got, err := metaOf(data)
			if err != nil || got != want {
				t.Fatalf("metaOf = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestMetaOf_malformedIsAnError(t *testing.T) {
	for _, data := range []string{``, `[]`, `{"orderId":}`, `{"orderId":"o"`, `{"version":"x"}`, `{"status":"nope"}`, `{"a":1}x`, `{"a" 1}`, `{"a":[1,2}`} {
		if m, err := metaOf([]byte(data)); err == nil {
			t.Errorf("metaOf(%q) = %+v, want an error", data, m)
		}
	}
}

// FuzzMetaOf checks that whatever encoding/json decodes, metaOf reads the
// same.
func FuzzMetaOf(f *testing.F) {
	f.Add(snapshot(f))
	f.Add([]byte(`{"orderId":"o","version":1,"parameters":{"x":[{"y":"]"}]}}`))
	f.Add([]byte(`{"OrderId":"o"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want meta
		if json.Unmarshal(data, &want) != nil {
			return
		}
		got, err := metaOf(data)
		if err != nil || got != want {
			t.Fatalf("metaOf(%q) = %+v, %v; want %+v", data, got, err, want)
		}
	})
}

// BenchmarkMetaOf compares reading a snapshot's Record members with metaOf
// and with a full decode.
func BenchmarkMetaOf(b *testing.B) {
	data := snapshot(b)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := metaOf(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var m meta
			if err := json.Unmarshal(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
