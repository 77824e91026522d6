package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Ceiling is what the bare HTTP stack can do on this machine: a fasthttp
// server that answers every POST with 202 and nothing else, driven by a
// fasthttp client at the workload's concurrency, both in the bench process.
type Ceiling struct {
	Requests          uint64  `json:"requests"`
	Errors            uint64  `json:"errors"`
	Seconds           float64 `json:"seconds"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// OrdersPerSecond is RequestsPerSecond / ExchangesPerOrder: the orders/s
	// an orchestrator that cost nothing but its HTTP exchanges would reach.
	OrdersPerSecond float64 `json:"ordersPerSecond"`
	// Efficiency is the workload's orders/s ÷ OrdersPerSecond.
	Efficiency float64 `json:"efficiency"`
}

// ceilingBody is what each ceiling POST carries: about a create's size.
const ceilingBody = `{"parameters":{"bench":true,"seq":123456}}`

// measureCeiling serves 202 on a loopback port and POSTs to it with
// concurrency workers for d, or until maxRequests were sent, or ctx ends.
func measureCeiling(ctx context.Context, concurrency int, d time.Duration, maxRequests uint64, requestTimeout time.Duration) (Ceiling, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Ceiling{}, fmt.Errorf("ceiling: listen: %w", err)
	}
	srv := &fasthttp.Server{
		Name:          "fanflow-bench-ceiling",
		NoDefaultDate: true,
		ReadTimeout:   requestTimeout,
		WriteTimeout:  requestTimeout,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if !ctx.IsPost() {
				ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
				return
			}
			ctx.SetStatusCode(fasthttp.StatusAccepted)
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	client := &fasthttp.HostClient{
		Addr:                      ln.Addr().String(),
		MaxConns:                  concurrency + 64,
		MaxConnWaitTimeout:        requestTimeout,
		ReadTimeout:               requestTimeout,
		WriteTimeout:              requestTimeout,
		MaxIdemponentCallAttempts: 1,
	}
	url := "http://" + ln.Addr().String() + "/"
	var claimed, done, failed atomic.Uint64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	begin := time.Now()
	for range concurrency {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetBodyString(ceilingBody)
			for ctx.Err() == nil && time.Now().Before(stop) && claimed.Add(1) <= maxRequests {
				resp.Reset()
				err := client.Do(req, resp)
				done.Add(1)
				if err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	client.CloseIdleConnections()
	if err := srv.Shutdown(); err != nil {
		return Ceiling{}, fmt.Errorf("ceiling: shutdown: %w", err)
	}
	if err := <-served; err != nil {
		return Ceiling{}, fmt.Errorf("ceiling: serve: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Ceiling{}, fmt.Errorf("ceiling: %w", err)
	}
	n, bad := done.Load(), failed.Load()
	c := Ceiling{
		Requests:          n,
		Errors:            bad,
		Seconds:           round(elapsed.Seconds(), 3),
		RequestsPerSecond: round(rate(float64(n-bad), elapsed), 1),
	}
	c.OrdersPerSecond = round(c.RequestsPerSecond/ExchangesPerOrder, 1)
	return c, nil
}
