package mocks

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkHandle_acceptAndWait measures accepting one callout whose
// callback then waits (30 s): the cost of a waiting job is one timer and
// its body. b.N jobs are left waiting; Close cancels them.
func BenchmarkHandle_acceptAndWait(b *testing.B) {
	s, err := New(Config{CallbackURL: callbackURL, Seed: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/batchJobA")
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(validBody)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		s.Handle(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.StopTimer()
	if got := s.Stats().CallbacksPending; got != int64(b.N) {
		b.Errorf("pending = %d, want %d", got, b.N)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCallout_roundTrip measures callout → 202 → callback → 200 over
// in-memory connections, with callbacks sent immediately (TimeScale 0).
func BenchmarkCallout_roundTrip(b *testing.B) {
	h := newHarness(b, Config{}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://jobs.test/v1/batchJobA")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyString(validBody)
		for pb.Next() {
			if err := h.client.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
				b.Errorf("callout: %v, status %d", err, resp.StatusCode())
				return
			}
		}
	})
	deadline := time.Now().Add(time.Minute)
	for h.s.Stats().CallbacksSent < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d callbacks sent: %+v", h.s.Stats().CallbacksSent, b.N, h.s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}
