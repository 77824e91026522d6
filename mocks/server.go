package mocks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/fanflow/fanflow/order"
)

// Tuning of the callback client and of retries.
const (
	backoffBase = 50 * time.Millisecond // first retry waits about this long
	backoffMax  = 2 * time.Second       // cap of the doubling backoff
	// maxRetryAfter caps how long a receiver's Retry-After can delay a retry.
	maxRetryAfter = time.Minute
	// closeWait bounds how long Close waits for callbacks being sent.
	closeWait = 5 * time.Second
	// maxTimeout is the largest "timeout" (seconds) a callout may carry.
	maxTimeout = math.MaxInt32
)

// Stats are counters of a Server since New. Callbacks are counted per
// delivery: a duplicated job makes two deliveries.
type Stats struct {
	CalloutsAccepted uint64 // answered 202
	CalloutsRejected uint64 // answered 500 (injected) or 503 (closing)
	CalloutsInvalid  uint64 // answered 4xx (bad method, content type or body)

	CallbacksSent       uint64 // deliveries answered 2xx
	CallbacksRetried    uint64 // retry attempts scheduled after a retryable failure
	CallbacksFailed     uint64 // deliveries given up: final 4xx or retries exhausted
	CallbacksDropped    uint64 // accepted jobs that, by DropRate, never call back
	CallbacksDuplicated uint64 // accepted jobs that, by DuplicateRate, call back twice
	CallbacksCancelled  uint64 // deliveries abandoned by Close

	// CallbacksPending is the number of deliveries waiting or being sent.
	CallbacksPending int64
}

// Server is a mock job service. Create it with New; its methods are safe
// for concurrent use. Call Close when done to cancel pending callbacks.
type Server struct {
	cfg       Config
	timeScale float64
	log       *slog.Logger
	endpoints map[string]order.JobSpec
	client    *fasthttp.Client

	rngMu sync.Mutex
	rng   *rand.Rand

	mu       sync.Mutex
	closed   bool
	pending  map[*delivery]struct{} // scheduled, timer not yet fired
	inflight sync.WaitGroup         // deliveries being sent

	calloutsAccepted, calloutsRejected, calloutsInvalid atomic.Uint64
	sent, retried, failed, dropped, duplicated          atomic.Uint64
	cancelled                                           atomic.Uint64
	pendingN                                            atomic.Int64
}

// New applies cfg's defaults, validates it and returns a Server ready to
// serve. A nil log uses slog.Default().
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg.Jobs = append([]order.JobSpec(nil), cfg.Jobs...)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mocks: invalid config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Server{
		cfg:       cfg,
		timeScale: *cfg.TimeScale,
		log:       log.With("component", "mocks"),
		endpoints: make(map[string]order.JobSpec, len(cfg.Jobs)),
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		pending:   make(map[*delivery]struct{}),
	}
	for _, j := range cfg.Jobs {
		s.endpoints[j.Endpoint] = j
	}
	s.client = &fasthttp.Client{
		Name:                "fanflow-mock",
		Dial:                cfg.CallbackDial,
		MaxConnsPerHost:     1024,
		MaxConnWaitTimeout:  5 * time.Second,
		MaxIdleConnDuration: 30 * time.Second,
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        10 * time.Second,
		MaxResponseBodySize: 1 << 20,
		// Retries are ours (with backoff); fasthttp must not resend.
		MaxIdemponentCallAttempts: 1,
	}
	return s, nil
}

// Stats returns a snapshot of the counters. Counters are read one by one, so
// a snapshot taken while callbacks are moving may be slightly inconsistent.
func (s *Server) Stats() Stats {
	return Stats{
		CalloutsAccepted:    s.calloutsAccepted.Load(),
		CalloutsRejected:    s.calloutsRejected.Load(),
		CalloutsInvalid:     s.calloutsInvalid.Load(),
		CallbacksSent:       s.sent.Load(),
		CallbacksRetried:    s.retried.Load(),
		CallbacksFailed:     s.failed.Load(),
		CallbacksDropped:    s.dropped.Load(),
		CallbacksDuplicated: s.duplicated.Load(),
		CallbacksCancelled:  s.cancelled.Load(),
		CallbacksPending:    s.pendingN.Load(),
	}
}

// Handler returns a handler for a standalone listener: configured endpoints
// are served, any other path gets 404 with a JSON error.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !s.Handle(ctx) {
			writeError(ctx, fasthttp.StatusNotFound, "not_found",
				fmt.Sprintf("no mock job endpoint at %q", ctx.Path()), "")
		}
	}
}

// Handle serves ctx and returns true if its path is a configured job
// endpoint; otherwise it leaves ctx untouched and returns false, so a host
// server can mount the mocks and fall through to its own routes.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) bool {
	spec, ok := s.endpoints[string(ctx.Path())]
	if !ok {
		return false
	}
	s.serveCallout(ctx, spec)
	return true
}

// callout is a validated callout request.
type callout struct {
	body    []byte          // the whole received body, copied
	rawJob  json.RawMessage // "jobId" as received (a JSON string)
	jobID   string
	orderID string
	timeout int64
	token   string
}

// decision is what fault injection chose for one callout.
type decision struct {
	fail, drop, failed, duplicate bool
	jitter                        [2]time.Duration // per delivery
}

func (s *Server) serveCallout(ctx *fasthttp.RequestCtx, spec order.JobSpec) {
	c, herr := parseCallout(ctx)
	if herr != nil {
		s.calloutsInvalid.Add(1)
		if herr.status == fasthttp.StatusMethodNotAllowed {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
		}
		s.log.Debug("mock callout rejected as invalid", "endpoint", spec.Endpoint,
			"status", herr.status, "code", herr.Code, "field", herr.Field, "error", herr.Message)
		writeError(ctx, herr.status, herr.Code, herr.Message, herr.Field)
		return
	}

	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.calloutsRejected.Add(1)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "shutting_down", "mock job service is shutting down", "")
		return
	}

	d := s.decide()
	if d.fail {
		s.calloutsRejected.Add(1)
		s.log.Info("mock callout failed by injection",
			"orderId", c.orderID, "jobId", c.jobID, "endpoint", spec.Endpoint)
		writeError(ctx, fasthttp.StatusInternalServerError, "injected_failure", "mock job service: injected callout failure", "")
		return
	}
	s.calloutsAccepted.Add(1)
	switch {
	case d.drop:
		s.dropped.Add(1)
		s.log.Info("mock callback dropped by injection",
			"orderId", c.orderID, "jobId", c.jobID, "endpoint", spec.Endpoint)
	default:
		body := c.body
		if d.failed {
			body = failedBody(c)
		}
		delay := s.delay(c.timeout)
		copies := 1
		if d.duplicate {
			copies = 2
			s.duplicated.Add(1)
		}
		for i := range copies {
			s.schedule(&delivery{
				s: s, orderID: c.orderID, jobID: c.jobID, body: body, token: c.token, copy: i,
			}, satAdd(delay, d.jitter[i]))
		}
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("mock callout accepted", "orderId", c.orderID, "jobId", c.jobID,
				"endpoint", spec.Endpoint, "delay", delay, "failed", d.failed, "duplicate", d.duplicate)
		}
	}
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	b := make([]byte, 0, 32+len(c.rawJob))
	b = append(b, `{"accepted":true,"jobId":`...)
	b = append(b, c.rawJob...)
	b = append(b, '}')
	ctx.SetBody(b)
}

// decide draws the fault injection for one callout.
func (s *Server) decide() decision {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	var d decision
	d.fail = s.rng.Float64() < s.cfg.CalloutFailRate
	if d.fail {
		return d
	}
	d.drop = s.rng.Float64() < s.cfg.DropRate
	d.failed = s.rng.Float64() < s.cfg.FailedRate
	d.duplicate = s.rng.Float64() < s.cfg.DuplicateRate
	if s.cfg.Jitter > 0 {
		for i := range d.jitter {
			d.jitter[i] = time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
		}
	}
	return d
}

// delay is timeout seconds × TimeScale, saturating instead of overflowing.
func (s *Server) delay(timeout int64) time.Duration {
	f := float64(timeout) * s.timeScale * float64(time.Second)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// satAdd adds two non-negative durations, saturating at the maximum.
func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// httpError is an invalid request, in fanflow's error shape.
type httpError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func badField(field, code, msg string) *httpError {
	return &httpError{status: fasthttp.StatusBadRequest, Code: code, Message: msg, Field: field}
}

// parseCallout validates the request and copies what must outlive it.
func parseCallout(ctx *fasthttp.RequestCtx) (*callout, *httpError) {
	if !ctx.IsPost() {
		return nil, &httpError{status: fasthttp.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("method %s not allowed; use POST", ctx.Method())}
	}
	ct := ctx.Request.Header.ContentType()
	if string(ct) != "application/json" { // the usual case needs no MIME parse
		if mt, _, err := mime.ParseMediaType(string(ct)); err != nil || mt != "application/json" {
			return nil, &httpError{status: fasthttp.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
		}
	}
	raw := ctx.PostBody()
	if !json.Valid(raw) {
		return nil, badField("", "invalid_json", "body is not valid JSON")
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); t[0] != '{' {
		return nil, badField("", "invalid_body", "body must be a JSON object")
	}
	c := &callout{body: bytes.Clone(raw)}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(c.body)
	if err != nil { // valid JSON that fastjson refuses (nested too deeply)
		return nil, badField("", "invalid_body", "body must be a JSON object: "+err.Error())
	}
	// The members the mock reads, as sent; a repeated one counts by its last.
	var jobID, orderID, timeout, token json.RawMessage
	v.GetObject().Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "jobId":
			jobID = v.MarshalTo(nil)
		case "orderId":
			orderID = v.MarshalTo(nil)
		case "timeout":
			timeout = v.MarshalTo(nil)
		case "callbackToken":
			token = v.MarshalTo(nil)
		}
	})
	var herr *httpError
	if c.jobID, herr = stringField(jobID, "jobId"); herr != nil {
		return nil, herr
	}
	c.rawJob = jobID
	if c.orderID, herr = stringField(orderID, "orderId"); herr != nil {
		return nil, herr
	}
	if timeout == nil {
		return nil, badField("timeout", "missing_field", "timeout is required")
	}
	t, err := strconv.ParseInt(string(timeout), 10, 64)
	if err != nil || t < 0 || t > maxTimeout {
		return nil, badField("timeout", "invalid_field",
			fmt.Sprintf("timeout must be an integer number of seconds in [0, %d], got %s", maxTimeout, timeout))
	}
	c.timeout = t
	if token != nil {
		// A token that is not a string is still echoed in the body, just
		// not copied to the header.
		_ = json.Unmarshal(token, &c.token)
	}
	return c, nil
}

// stringField returns fields[name] if it is a non-empty JSON string.
// parsers are reused across callouts: a parser keeps its buffers.
var parsers fastjson.ParserPool

// stringField reads a required string member from its raw JSON (nil: absent).
func stringField(raw json.RawMessage, name string) (string, *httpError) {
	if raw == nil {
		return "", badField(name, "missing_field", name+" is required")
	}
	var v string // null leaves v empty; other non-strings fail to decode
	if json.Unmarshal(raw, &v) != nil || v == "" {
		return "", badField(name, "invalid_field", fmt.Sprintf("%s must be a non-empty string, got %s", name, raw))
	}
	return v, nil
}

// injectedError is the "error" a failed callback carries.
const injectedError = `{"code":"mock_job_failed","message":"mock job service: injected job failure"}`

// failedBody is the received object plus "status":"failed" and "error".
// When the body has neither key they are appended, so the rest stays
// byte for byte as received; otherwise they replace the received ones.
func failedBody(c *callout) []byte {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(c.body, &fields); err != nil {
		panic(fmt.Sprintf("mocks: decoding a body that was valid on receipt: %v", err))
	}
	_, hasStatus := fields["status"]
	_, hasError := fields["error"]
	if !hasStatus && !hasError {
		b := bytes.TrimRight(c.body, " \t\r\n")
		b = bytes.TrimRight(b[:len(b)-1], " \t\r\n") // drop the closing '}'
		out := make([]byte, 0, len(b)+len(injectedError)+32)
		out = append(out, b...)
		if out[len(out)-1] != '{' {
			out = append(out, ',')
		}
		out = append(out, `"status":"failed","error":`...)
		out = append(out, injectedError...)
		return append(out, '}')
	}
	m := make(map[string]json.RawMessage, len(fields)+2)
	for k, v := range fields {
		m[k] = v
	}
	m["status"] = json.RawMessage(`"failed"`)
	m["error"] = json.RawMessage(injectedError)
	out, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("mocks: re-encoding a valid JSON object: %v", err))
	}
	return out
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg, field string) {
	body, err := json.Marshal(struct {
		Error httpError `json:"error"`
	}{httpError{Code: code, Message: msg, Field: field}})
	if err != nil {
		panic(fmt.Sprintf("mocks: encoding an error body: %v", err))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}
