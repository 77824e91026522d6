package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/valyala/fasthttp"
)

func TestGet_answersStoredJSONVerbatim(t *testing.T) {
	t.Parallel()
	// Odd spacing and member order prove the body is not re-encoded.
	stored := []byte(`{"version":3,  "orderId":"o-1","status":"running","parameters":{"b":1,"a":2}}`)
	svc := &fakeService{getBody: stored}
	api := startServer(t, svc, httpapi.Config{})

	r := api.get(ordersPath + "/o-1")

	if r.status != fasthttp.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	if string(r.body) != string(stored) {
		t.Errorf("body = %s, want verbatim %s", r.body, stored)
	}
	if ct := r.header["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if got := svc.getCalls(); !slices.Equal(got, []string{"o-1"}) {
		t.Errorf("Get calls = %q, want [o-1]", got)
	}
}

func TestGet_serviceErrorsMapToStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"unknown order is 404", fmt.Errorf("order o-1: %w", actors.ErrNotFound), 404, "order_not_found", false},
		{"store unreachable is 503", fmt.Errorf("order o-1: %w: %w", actors.ErrUnavailable, errors.New("dial tcp: refused")), 503, "unavailable", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{getErr: tt.err}
			api := startServer(t, svc, httpapi.Config{})
			r := api.get(ordersPath + "/o-1")
			e := decodeError(t, r, tt.status)
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q", e.Code, tt.code)
			}
			if got, ok := r.header["Retry-After"]; ok != tt.retryAfter || (ok && got == "") {
				t.Errorf("Retry-After = %q (present %v), want present %v", got, ok, tt.retryAfter)
			}
		})
	}
}

func TestHealthz_is200(t *testing.T) {
	t.Parallel()
	svc := &fakeService{}
	api := startServer(t, svc, httpapi.Config{Ready: func(context.Context) error { return errors.New("not ready") }})
	r := api.get("/healthz")
	if r.status != fasthttp.StatusOK {
		t.Errorf("status = %d, want 200 (liveness ignores readiness); body %s", r.status, r.body)
	}
	svc.assertNoCalls(t)
}

func TestReadyz_reflectsReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ready  func(context.Context) error
		status int
	}{
		{"no Ready func is always ready", nil, 200},
		{"Ready returning nil is ready", func(context.Context) error { return nil }, 200},
		{"Ready returning an error is 503", func(context.Context) error { return errors.New("store: recovery in progress") }, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			calls := 0
			cfg := httpapi.Config{}
			if tt.ready != nil {
				cfg.Ready = func(ctx context.Context) error {
					mu.Lock()
					calls++
					mu.Unlock()
					return tt.ready(ctx)
				}
			}
			api := startServer(t, &fakeService{}, cfg)
			r := api.get("/readyz")
			if tt.status == 200 {
				if r.status != 200 {
					t.Errorf("status = %d, want 200; body %s", r.status, r.body)
				}
			} else {
				checkError(t, r, tt.status, "not_ready", "", "recovery in progress")
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.ready != nil && calls != 1 {
				t.Errorf("Ready called %d times, want 1", calls)
			}
		})
	}
}

func TestExtra_isOfferedOnlyUnroutedPathsAndItsAnswerIsUsed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var offered []string
	extra := func(ctx *fasthttp.RequestCtx) bool {
		mu.Lock()
		offered = append(offered, string(ctx.Method())+" "+string(ctx.Path()))
		mu.Unlock()
		if string(ctx.Path()) != "/v1/batchJobA" {
			return false
		}
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetBodyString("mock accepted")
		return true
	}
	svc := &fakeService{
		submitBody: []byte(`{"orderId":"o-1"}`),
		getBody:    []byte(`{"orderId":"o-1"}`),
		outcome:    order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Running},
	}
	api := startServer(t, svc, httpapi.Config{Extra: extra})

	// API routes, including wrong methods on them, are never offered.
	api.postJSON(ordersPath, `{"parameters":{}}`)
	api.get(ordersPath)
	api.postJSON(resultsPath, `{"orderId":"o-1","jobId":"j-1"}`)
	api.get(ordersPath + "/o-1")
	api.get("/healthz")
	api.get("/readyz")

	r := api.postJSON("/v1/batchJobA", `{"jobId":"j-1"}`)
	if r.status != fasthttp.StatusAccepted || string(r.body) != "mock accepted" {
		t.Errorf("served by Extra: status %d body %q, want 202 %q", r.status, r.body, "mock accepted")
	}
	r = api.get("/v1/other")
	checkError(t, r, fasthttp.StatusNotFound, "route_not_found", "", "/v1/other")

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"POST /v1/batchJobA", "GET /v1/other"}; !slices.Equal(offered, want) {
		t.Errorf("Extra was offered %q, want exactly %q", offered, want)
	}
}

func TestGet_emptyOrderIDIsNotRouted(t *testing.T) {
	t.Parallel()
	svc := &fakeService{}
	api := startServer(t, svc, httpapi.Config{})
	checkError(t, api.get(ordersPath+"/"), 404, "route_not_found", "", "/v1/parallelCallbacks/")
	if n := len(svc.getCalls()); n != 0 {
		t.Fatalf("Get called %d times", n)
	}
}
