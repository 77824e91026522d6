// Package httpapi is fanflow's REST API on fasthttp (DESIGN §3), and the
// fasthttp client that performs callouts to job services.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/valyala/fasthttp"
)

// OrderService is what the API needs from the orchestrator; *actors.Client
// implements it.
type OrderService interface {
	Submit(ctx context.Context, req actors.SubmitRequest) ([]byte, error)
	Callback(ctx context.Context, req actors.CallbackRequest) (order.Outcome, error)
	Get(ctx context.Context, orderID string) ([]byte, error)
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

// Handle routes one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == ordersPath:
		s.only(ctx, fasthttp.MethodPost, s.create)
	case path == resultsPath:
		s.only(ctx, fasthttp.MethodPost, s.callback)
	case strings.HasPrefix(path, ordersPrefix) && len(path) > len(ordersPrefix) && !strings.Contains(path[len(ordersPrefix):], "/"):
		s.only(ctx, fasthttp.MethodGet, func(ctx *fasthttp.RequestCtx) { s.get(ctx, path[len(ordersPrefix):]) })
	case path == "/healthz":
		s.only(ctx, fasthttp.MethodGet, func(ctx *fasthttp.RequestCtx) { writeJSON(ctx, 200, []byte(`{"status":"ok"}`)) })
	case path == "/readyz":
		s.only(ctx, fasthttp.MethodGet, s.ready)
	default:
		if s.cfg.Extra != nil && s.cfg.Extra(ctx) {
			return
		}
		writeError(ctx, &apiError{Status: fasthttp.StatusNotFound, Code: "route_not_found", Message: "no route for " + path})
	}
}

func (s *Server) only(ctx *fasthttp.RequestCtx, method string, h fasthttp.RequestHandler) {
	if string(ctx.Method()) != method {
		ctx.Response.Header.Set("Allow", method)
		writeError(ctx, &apiError{Status: fasthttp.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "method " + string(ctx.Method()) + " is not allowed here; use " + method})
		return
	}
	h(ctx)
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
