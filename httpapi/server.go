// Package httpapi is fanflow's REST API on fasthttp (DESIGN §3), and the
// fasthttp client that performs callouts to job services.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/valyala/fasthttp"
)

// OrderService is what the API needs from the orchestrator; *actors.Client
// implements it.
type OrderService interface {
	Submit(ctx context.Context, req actors.SubmitRequest) ([]byte, error)
	Callback(ctx context.Context, req actors.CallbackRequest) (order.Outcome, error)
	Get(ctx context.Context, orderID string) ([]byte, error)
	Cancel(ctx context.Context, orderID, reason string) ([]byte, error)
	Retry(ctx context.Context, orderID string) ([]byte, error)
	List(ctx context.Context, q persistence.Query) (persistence.Page, error)
}

// Config configures a Server. Each field says its default.
type Config struct {
	// BodyLimit is the largest request body accepted, in bytes (default 1 MiB).
	BodyLimit int
	// ReadTimeout bounds reading one request (default 10s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response (default 15s).
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's idle time (default 60s).
	IdleTimeout time.Duration
	// Ready reports whether the service is ready (GET /readyz); nil means always.
	Ready func(ctx context.Context) error
	// Extra, when set, is offered every request the API does not route and
	// returns whether it served it (the built-in mock job services use it).
	Extra func(ctx *fasthttp.RequestCtx) bool
	// Metrics, when set, writes the Prometheus exposition served at GET /metrics.
	Metrics MetricsWriter
	// Observer, when set, is told how each request was answered.
	Observer Observer
	// AdminToken, when set, must be presented as "Authorization: Bearer …"
	// on the admin endpoints: list, cancel and retry (default none).
	AdminToken string
	// Logger receives request errors (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 15 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MetricsWriter writes metrics in the Prometheus text format.
type MetricsWriter interface {
	ContentType() string
	WriteTo(w io.Writer) (int64, error)
}

// Observer is told how requests were answered, for metrics. Implementations
// are safe for concurrent use.
type Observer interface {
	// Answered reports one answered request: its route (create, callback,
	// get, list, cancel, retry) and its outcome (the error code, "ok", or for
	// callbacks "duplicate").
	Answered(route, outcome string)
}

// Server serves the API. It is safe for concurrent use once built.
type Server struct {
	cfg Config
	svc OrderService
	srv *fasthttp.Server
}

const (
	ordersPath   = "/v1/parallelCallbacks"
	ordersPrefix = ordersPath + "/"
	resultsPath  = ordersPath + "/results"
)

// New builds a Server for svc.
func New(svc OrderService, cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, svc: svc}
	s.srv = &fasthttp.Server{
		Handler:            s.Handle,
		Name:               "fanflow",
		MaxRequestBodySize: cfg.BodyLimit,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		ErrorHandler:       s.transportError,
		Logger:             fasthttpLogger{cfg.Logger},
		NoDefaultDate:      true,
	}
	return s
}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for open requests to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// transportError answers requests fasthttp refused before routing, such as
// a body over the limit, with the API's error JSON.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeError(ctx, &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: "request body is larger than the limit of " + strconv.Itoa(s.cfg.BodyLimit) + " bytes"})
		return
	}
	writeError(ctx, badRequest("bad_request", "", "cannot read request: %v", err))
}

// outcomeKey is the user value under which a handler leaves its outcome
// for the Observer: an error code, "ok" or "duplicate".
const outcomeKey = "fanflow.outcome"

func setOutcome(ctx *fasthttp.RequestCtx, outcome string) { ctx.SetUserValue(outcomeKey, outcome) }

// Handle routes one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	route := s.route(ctx)
	if route != "" && s.cfg.Observer != nil {
		outcome, _ := ctx.UserValue(outcomeKey).(string)
		s.cfg.Observer.Answered(route, outcome)
	}
}

// route serves one request and returns the name of its route for the
// Observer ("" for health, metrics and other paths).
func (s *Server) route(ctx *fasthttp.RequestCtx) string {
	path := string(ctx.Path())
	switch {
	case path == ordersPath:
		switch string(ctx.Method()) {
		case fasthttp.MethodGet:
			s.admin(ctx, s.list)
			return "list"
		case fasthttp.MethodPost:
			s.create(ctx)
			return "create"
		default:
			notAllowed(ctx, "GET, POST")
		}
	case path == resultsPath:
		s.only(ctx, fasthttp.MethodPost, s.callback)
		return "callback"
	case strings.HasPrefix(path, ordersPrefix) && len(path) > len(ordersPrefix):
		return s.orderRoute(ctx, path[len(ordersPrefix):])
	case path == "/healthz":
		s.only(ctx, fasthttp.MethodGet, func(ctx *fasthttp.RequestCtx) { writeJSON(ctx, 200, []byte(`{"status":"ok"}`)) })
	case path == "/readyz":
		s.only(ctx, fasthttp.MethodGet, s.ready)
	case path == "/metrics" && s.cfg.Metrics != nil:
		s.only(ctx, fasthttp.MethodGet, s.metrics)
	case path == "/openapi.json":
		s.only(ctx, fasthttp.MethodGet, serveOpenAPI)
	default:
		if s.cfg.Extra != nil && s.cfg.Extra(ctx) {
			return ""
		}
		writeError(ctx, &apiError{Status: fasthttp.StatusNotFound, Code: "route_not_found", Message: "no route for " + path})
	}
	return ""
}

// orderRoute serves /v1/parallelCallbacks/{id}[/cancel|/retry] and returns the route's name.
func (s *Server) orderRoute(ctx *fasthttp.RequestCtx, rest string) string {
	id, action, _ := strings.Cut(rest, "/")
	switch {
	case id == "" || strings.Contains(action, "/"):
	case action == "":
		s.only(ctx, fasthttp.MethodGet, func(ctx *fasthttp.RequestCtx) { s.get(ctx, id) })
		return "get"
	case action == "cancel":
		s.only(ctx, fasthttp.MethodPost, func(ctx *fasthttp.RequestCtx) { s.admin(ctx, func(ctx *fasthttp.RequestCtx) { s.cancel(ctx, id) }) })
		return "cancel"
	case action == "retry":
		s.only(ctx, fasthttp.MethodPost, func(ctx *fasthttp.RequestCtx) { s.admin(ctx, func(ctx *fasthttp.RequestCtx) { s.retry(ctx, id) }) })
		return "retry"
	}
	writeError(ctx, &apiError{Status: fasthttp.StatusNotFound, Code: "route_not_found", Message: "no route for " + string(ctx.Path())})
	return ""
}

// admin runs h if the request carries the admin token, or none is configured.
func (s *Server) admin(ctx *fasthttp.RequestCtx, h fasthttp.RequestHandler) {
	if s.cfg.AdminToken != "" {
		auth := ctx.Request.Header.Peek("Authorization")
		tok, ok := bytes.CutPrefix(auth, []byte("Bearer "))
		if !ok || subtle.ConstantTimeCompare(tok, []byte(s.cfg.AdminToken)) != 1 {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="fanflow admin"`)
			writeError(ctx, &apiError{Status: fasthttp.StatusUnauthorized, Code: "unauthorized", Field: "Authorization",
				Message: "this admin endpoint needs the header Authorization: Bearer <admin token>"})
			return
		}
	}
	h(ctx)
}

func (s *Server) cancel(ctx *fasthttp.RequestCtx, id string) {
	var reason string
	if body := ctx.PostBody(); len(bytes.TrimSpace(body)) > 0 {
		if ae := checkJSONContentType(ctx.Request.Header.ContentType()); ae != nil {
			writeError(ctx, ae)
			return
		}
		var ae *apiError
		if reason, ae = parseCancel(body); ae != nil {
			writeError(ctx, ae)
			return
		}
	}
	data, err := s.svc.Cancel(ctx, id, reason)
	if err != nil {
		s.fail(ctx, "cancel", err, "orderId", id)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, data)
}

func (s *Server) retry(ctx *fasthttp.RequestCtx, id string) {
	data, err := s.svc.Retry(ctx, id)
	if err != nil {
		s.fail(ctx, "retry", err, "orderId", id)
		return
	}
	writeJSON(ctx, fasthttp.StatusAccepted, data)
}

// maxListLimit bounds one page of a listing.
const maxListLimit = 1000

func (s *Server) list(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	q := persistence.Query{Limit: 100, Cursor: string(args.Peek("cursor"))}
	if v := args.Peek("status"); len(v) > 0 {
		st, err := order.ParseStatus(string(v))
		if err != nil {
			writeError(ctx, badRequest("invalid_field", "status", "status must be one of running, completed, failed, expired, cancelled; got %q", v))
			return
		}
		q.Status = st
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > maxListLimit {
			writeError(ctx, badRequest("invalid_field", "limit", "limit must be an integer from 1 to %d", maxListLimit))
			return
		}
		q.Limit = n
	}
	page, err := s.svc.List(ctx, q)
	if err != nil {
		s.fail(ctx, "list", err)
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"orders":[`)
	for i, r := range page.Records {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r.Data)
	}
	b.WriteString(`],"nextCursor":`)
	next, _ := json.Marshal(page.Next)
	if page.Next == "" {
		next = []byte("null")
	}
	b.Write(next)
	b.WriteByte('}')
	writeJSON(ctx, fasthttp.StatusOK, b.Bytes())
}

func (s *Server) only(ctx *fasthttp.RequestCtx, method string, h fasthttp.RequestHandler) {
	if string(ctx.Method()) != method {
		notAllowed(ctx, method)
		return
	}
	h(ctx)
}

func notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, &apiError{Status: fasthttp.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: "method " + string(ctx.Method()) + " is not allowed here; use " + allow})
}

func (s *Server) create(ctx *fasthttp.RequestCtx) {
	if ae := checkJSONContentType(ctx.Request.Header.ContentType()); ae != nil {
		writeError(ctx, ae)
		return
	}
	req, ae := parseCreate(ctx.PostBody())
	if ae != nil {
		writeError(ctx, ae)
		return
	}
	req.IdempotencyKey = string(ctx.Request.Header.Peek("Idempotency-Key"))
	data, err := s.svc.Submit(ctx, req)
	if err != nil {
		s.fail(ctx, "create", err)
		return
	}
	var head struct {
		OrderID string `json:"orderId"`
	}
	_ = json.Unmarshal(data, &head)
	ctx.Response.Header.Set("Location", ordersPrefix+head.OrderID)
	writeJSON(ctx, fasthttp.StatusAccepted, data)
}

// callbackAnswer is the 200 body of a callback.
type callbackAnswer struct {
	OrderID     string          `json:"orderId"`
	JobID       string          `json:"jobId"`
	JobStatus   order.JobStatus `json:"jobStatus"`
	OrderStatus order.Status    `json:"orderStatus"`
	Duplicate   bool            `json:"duplicate"`
}

func (s *Server) callback(ctx *fasthttp.RequestCtx) {
	if ae := checkJSONContentType(ctx.Request.Header.ContentType()); ae != nil {
		writeError(ctx, ae)
		return
	}
	req, ae := parseCallback(ctx.PostBody(), ctx.Request.Header.Peek("X-Callback-Token"))
	if ae != nil {
		writeError(ctx, ae)
		return
	}
	out, err := s.svc.Callback(ctx, req)
	if err != nil {
		s.fail(ctx, "callback", err, "orderId", req.OrderID, "jobId", req.JobID)
		return
	}
	body, err := json.Marshal(callbackAnswer{OrderID: out.OrderID, JobID: out.JobID, JobStatus: out.JobStatus, OrderStatus: out.OrderStatus, Duplicate: out.Duplicate})
	if err != nil {
		s.fail(ctx, "callback", err)
		return
	}
	if out.Duplicate {
		setOutcome(ctx, "duplicate")
	}
	writeJSON(ctx, fasthttp.StatusOK, body)
}

func (s *Server) get(ctx *fasthttp.RequestCtx, id string) {
	data, err := s.svc.Get(ctx, id)
	if err != nil {
		s.fail(ctx, "get", err, "orderId", id)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, data)
}

func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			writeError(ctx, &apiError{Status: fasthttp.StatusServiceUnavailable, Code: "not_ready", Message: err.Error()})
			return
		}
	}
	writeJSON(ctx, 200, []byte(`{"status":"ready"}`))
}

// fail answers err and logs it when it is the server's fault.
func (s *Server) fail(ctx *fasthttp.RequestCtx, op string, err error, attrs ...any) {
	ae := toAPIError(err)
	if ae.Status >= 500 {
		s.cfg.Logger.Warn(op+" failed", append(attrs, "status", ae.Status, "err", err)...)
	}
	writeError(ctx, err)
}

// fasthttpLogger sends fasthttp's own messages (broken connections and the
// like) to slog at debug level: they are the client's problem, not ours.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("http: "+fmt.Sprintf(format, args...), "component", "fasthttp")
}

func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType(s.cfg.Metrics.ContentType())
	if _, err := s.cfg.Metrics.WriteTo(ctx); err != nil {
		s.fail(ctx, "metrics", err)
	}
}
