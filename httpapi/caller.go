package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/valyala/fasthttp"
)

// CallerConfig configures a Caller. Each field says its default.
type CallerConfig struct {
	// BaseURL is prepended to each job type's endpoint, e.g.
	// "http://127.0.0.1:8080". Required.
	BaseURL string
	// MaxConnsPerHost bounds open connections to one job service (default 1024).
	MaxConnsPerHost int
	// Timeout bounds one callout when its context has no deadline (default 5s).
	Timeout time.Duration
	// Dial opens a connection to addr; for tests (default TCP, fasthttp's dialer).
	Dial fasthttp.DialFunc
}

// Caller performs callouts with a shared fasthttp client. It implements
// actors.Caller and is safe for concurrent use.
type Caller struct {
	base    string
	timeout time.Duration
	client  *fasthttp.Client
}

// NewCaller returns a Caller for cfg.
func NewCaller(cfg CallerConfig) (*Caller, error) {
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("httpapi: jobs base URL %q must start with http:// or https://", cfg.BaseURL)
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Caller{
		base:    strings.TrimSuffix(cfg.BaseURL, "/"),
		timeout: cfg.Timeout,
		client: &fasthttp.Client{
			Name:                          "fanflow",
			MaxConnsPerHost:               cfg.MaxConnsPerHost,
			MaxIdleConnDuration:           30 * time.Second,
			ReadTimeout:                   cfg.Timeout,
			WriteTimeout:                  cfg.Timeout,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			MaxConnWaitTimeout:            cfg.Timeout,
			Dial:                          cfg.Dial,
		},
	}, nil
}

// calloutBody is what a job service receives (DESIGN §3).
type calloutBody struct {
	JobID         string `json:"jobId"`
	OrderID       string `json:"orderId"`
	Timeout       int    `json:"timeout"`
	CallbackToken string `json:"callbackToken,omitempty"`
}

// Call implements actors.Caller: POST {base}{endpoint} with the callout body.
// 2xx is success; a network error, 408, 429 and 5xx are retryable; any other
// status is final.
func (c *Caller) Call(ctx context.Context, co actors.Callout) (bool, error) {
	body, err := json.Marshal(calloutBody{JobID: co.JobID, OrderID: co.OrderID, Timeout: co.Timeout, CallbackToken: co.Token})
	if err != nil {
		return false, fmt.Errorf("encode callout: %w", err)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.base + co.Endpoint)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	return c.do(ctx, req, resp, co.Endpoint)
}

// Post implements actors.Poster: it sends body as JSON to url, classifying
// the answer as Call does.
func (c *Caller) Post(ctx context.Context, url string, body []byte) (bool, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	return c.do(ctx, req, resp, url)
}

// do sends req and classifies the answer: 2xx is success; a network error,
// 408, 429 and 5xx are retryable; any other status is final.
func (c *Caller) do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, target string) (bool, error) {
	timeout := c.timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := c.client.DoTimeout(req, resp, timeout); err != nil {
		return true, fmt.Errorf("POST %s: %w", target, err)
	}
	switch code := resp.StatusCode(); {
	case code >= 200 && code < 300:
		return false, nil
	case code == 408 || code == 429 || code >= 500:
		return true, fmt.Errorf("POST %s: HTTP %d: %s", target, code, snippet(resp.Body()))
	default:
		return false, fmt.Errorf("POST %s: HTTP %d: %s", target, code, snippet(resp.Body()))
	}
}

// snippet returns the start of a response body for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
