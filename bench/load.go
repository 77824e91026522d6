package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// API paths of the orchestrator.
const (
	ordersPath  = "/v1/parallelCallbacks"
	resultsPath = ordersPath + "/results"
)

// Order statuses the bench tells apart.
const (
	statusRunning   = "running"
	statusCompleted = "completed"
)

// generator drives orders against one orchestrator and learns of their
// completion from the mocks' OnCallbackAnswered hook. It is owned by Run;
// the hook may be called concurrently with everything.
type generator struct {
	cfg    *Config
	base   string // orchestrator base URL
	client *fasthttp.HostClient

	phase atomic.Pointer[phase] // the phase the hook attributes callbacks to

	mu      sync.Mutex
	waiting map[string]chan completion // orders created, not yet complete
	early   map[string]completion      // completions seen before their create's answer
}

// completion is an order reaching a final status, as a callback's answer
// reported it.
type completion struct {
	at     time.Time
	status string
}

// newGenerator returns a generator for the orchestrator at base.
func newGenerator(cfg *Config, base string) (*generator, error) {
	host, err := hostOf(base)
	if err != nil {
		return nil, err
	}
	return &generator{
		cfg:  cfg,
		base: base,
		client: &fasthttp.HostClient{
			Addr:                          host,
			Name:                          "fanflow-bench",
			MaxConns:                      cfg.Concurrency + 64,
			MaxConnWaitTimeout:            cfg.RequestTimeout,
			MaxIdleConnDuration:           time.Minute,
			ReadTimeout:                   cfg.RequestTimeout,
			WriteTimeout:                  cfg.RequestTimeout,
			MaxResponseBodySize:           1 << 20,
			MaxIdemponentCallAttempts:     1, // an error is reported, not hidden by a retry
			DisableHeaderNamesNormalizing: true,
		},
		waiting: make(map[string]chan completion),
		early:   make(map[string]completion),
	}, nil
}

// hostOf is the host:port of an http base URL.
func hostOf(base string) (string, error) {
	var u fasthttp.URI
	if err := u.Parse(nil, []byte(base)); err != nil {
		return "", fmt.Errorf("parse %q: %w", base, err)
	}
	host := string(u.Host())
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	return host, nil
}

// phase is one run of orders: the warm-up or the measured one. Its counters
// are read by the progress line while workers update them.
type phase struct {
	name  string
	total int

	started, completed, failed atomic.Int64
	// HTTP exchanges seen by the bench: creates and reads it sent (and
	// got an answer to), callbacks whose answers the mocks reported.
	creates, reads, callbacks atomic.Int64

	errMu  sync.Mutex
	errors map[string]uint64

	begin, end time.Time // set by run
	samples    []sample  // set by run
}

// sample is the latencies of one completed order.
type sample struct {
	create, endToEnd, read time.Duration
}

func newPhase(name string, total int) *phase {
	return &phase{name: name, total: total, errors: map[string]uint64{}}
}

// fail counts one error of kind.
func (p *phase) fail(kind string) {
	p.errMu.Lock()
	p.errors[kind]++
	p.errMu.Unlock()
}

// errorCounts returns a copy of the errors by kind.
func (p *phase) errorCounts() map[string]uint64 {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return maps.Clone(p.errors)
}

// errorTotal is the number of errors so far.
func (p *phase) errorTotal() uint64 {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	var n uint64
	for _, v := range p.errors {
		n += v
	}
	return n
}

// onCallbackAnswered is the mocks' hook: it counts the callback and, when
// its answer reports the order final, hands the completion to the order's
// worker (or keeps it for a worker not yet waiting).
func (g *generator) onCallbackAnswered(orderID, _ string, status int, body []byte) {
	now := time.Now()
	p := g.phase.Load()
	if p != nil {
		p.callbacks.Add(1)
	}
	if status != fasthttp.StatusOK {
		if p != nil {
			p.fail("callback_http_" + strconv.Itoa(status))
		}
		return
	}
	var ans struct{ OrderStatus string }
	var ok bool
	if ans.OrderStatus, ok = stringMember(body, "orderStatus"); !ok || ans.OrderStatus == "" {
		if p != nil {
			p.fail("callback_bad_answer")
		}
		return
	}
	if ans.OrderStatus == statusRunning {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.waiting[orderID]; ok {
		delete(g.waiting, orderID)
		ch <- completion{at: now, status: ans.OrderStatus} // buffered 1, sent once
		return
	}
	if _, seen := g.early[orderID]; !seen {
		g.early[orderID] = completion{at: now, status: ans.OrderStatus}
	}
}

// await registers orderID and returns the channel its completion arrives
// on; it may already hold it.
func (g *generator) await(orderID string) chan completion {
	ch := make(chan completion, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.early[orderID]; ok {
		delete(g.early, orderID)
		ch <- c
		return ch
	}
	g.waiting[orderID] = ch
	return ch
}

// forget stops waiting for orderID.
func (g *generator) forget(orderID string) {
	g.mu.Lock()
	delete(g.waiting, orderID)
	g.mu.Unlock()
}

// task is one order to run; due is its scheduled start (zero in a closed
// loop, where it starts when a worker takes it).
type task struct {
	seq int
	due time.Time
}

// run runs p.total orders with cfg.Concurrency workers and returns when
// every one has completed, failed or timed out, or ctx has ended.
func (g *generator) run(ctx context.Context, p *phase) {
	g.phase.Store(p)
	tasks := make(chan task)
	workers := min(g.cfg.Concurrency, p.total)
	perWorker := make([][]sample, workers)
	var wg sync.WaitGroup
	p.begin = time.Now()
	for w := range workers {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for t := range tasks {
				if s, ok := g.order(ctx, p, t, req, resp); ok {
					perWorker[w] = append(perWorker[w], s)
				}
			}
		})
	}
	g.feed(ctx, tasks, p)
	wg.Wait()
	p.end = time.Now()
	for _, s := range perWorker {
		p.samples = append(p.samples, s...)
	}
}

// feed hands p.total tasks to the workers, at cfg.Rate or as fast as they
// take them, then closes tasks.
func (g *generator) feed(ctx context.Context, tasks chan<- task, p *phase) {
	defer close(tasks)
	var timer *time.Timer
	if g.cfg.Rate > 0 {
		timer = time.NewTimer(0)
		defer timer.Stop()
	}
	for i := range p.total {
		t := task{seq: i}
		if g.cfg.Rate > 0 {
			t.due = p.begin.Add(time.Duration(float64(i) / g.cfg.Rate * float64(time.Second)))
			if wait := time.Until(t.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case tasks <- t:
		case <-ctx.Done():
			return
		}
	}
}

// order runs one order: create, wait for the callback that completes it,
// read its status. It reports the latencies, or false after counting an
// error.
func (g *generator) order(ctx context.Context, p *phase, t task, req *fasthttp.Request, resp *fasthttp.Response) (sample, bool) {
	if ctx.Err() != nil {
		return sample{}, false
	}
	p.started.Add(1)
	start := time.Now()
	if !t.due.IsZero() {
		start = t.due
	}
	id, ok := g.create(p, t.seq, req, resp)
	created := time.Now()
	if !ok {
		p.failed.Add(1)
		return sample{}, false
	}
	ch := g.await(id)
	timer := time.NewTimer(g.cfg.OrderTimeout)
	defer timer.Stop()
	var c completion
	select {
	case c = <-ch:
	case <-timer.C:
		g.forget(id)
		p.fail("order_timeout")
		p.failed.Add(1)
		return sample{}, false
	case <-ctx.Done():
		g.forget(id)
		p.fail("aborted")
		p.failed.Add(1)
		return sample{}, false
	}
	if c.status != statusCompleted {
		p.fail("order_" + c.status)
		p.failed.Add(1)
		return sample{}, false
	}
	readStart := time.Now()
	if !g.read(p, id, req, resp) {
		p.failed.Add(1)
		return sample{}, false
	}
	s := sample{create: created.Sub(start), endToEnd: c.at.Sub(start), read: time.Since(readStart)}
	p.completed.Add(1)
	return s, true
}

// create POSTs a new order and returns its id.
func (g *generator) create(p *phase, seq int, req *fasthttp.Request, resp *fasthttp.Response) (string, bool) {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(g.base + ordersPath)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyString(`{"parameters":{"bench":true,"seq":` + strconv.Itoa(seq) + `}}`)
	if err := g.client.DoDeadline(req, resp, time.Now().Add(g.cfg.RequestTimeout)); err != nil {
		p.fail("create_" + transportKind(err))
		return "", false
	}
	p.creates.Add(1)
	if resp.StatusCode() != fasthttp.StatusAccepted {
		p.fail("create_http_" + strconv.Itoa(resp.StatusCode()))
		return "", false
	}
	id, ok := stringMember(resp.Body(), "orderId")
	if !ok || id == "" {
		p.fail("create_bad_answer")
		return "", false
	}
	return id, true
}

// read GETs the order and checks that it is completed.
func (g *generator) read(p *phase, id string, req *fasthttp.Request, resp *fasthttp.Response) bool {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(g.base + ordersPath + "/" + id)
	req.Header.SetMethod(fasthttp.MethodGet)
	if err := g.client.DoDeadline(req, resp, time.Now().Add(g.cfg.RequestTimeout)); err != nil {
		p.fail("read_" + transportKind(err))
		return false
	}
	p.reads.Add(1)
	if resp.StatusCode() != fasthttp.StatusOK {
		p.fail("read_http_" + strconv.Itoa(resp.StatusCode()))
		return false
	}
	status, ok := stringMember(resp.Body(), "status")
	if !ok {
		p.fail("read_bad_answer")
		return false
	}
	if status != statusCompleted {
		p.fail("read_status_" + status)
		return false
	}
	return true
}

// answers parse the orchestrator's answers: the bench reads one member of
// each, for every exchange, on the machine it shares with the orchestrator,
// so it does not decode them whole.
var answers fastjson.ParserPool

// stringMember returns the string member key of a JSON object ("" if it is
// absent or not a string), or false if body is not JSON.
func stringMember(body []byte, key string) (string, bool) {
	p := answers.Get()
	defer answers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return "", false
	}
	return string(v.GetStringBytes(key)), true
}

// transportKind names a transport error for the errors table.
func transportKind(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport"
}
