package mocks

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// delivery is one callback to send: the body, and its retry state. It is
// owned by whichever timer callback is running for it; timers of one
// delivery never overlap, since the next is armed only after a send ends.
type delivery struct {
	s       *Server
	orderID string
	jobID   string
	body    []byte // immutable; shared by the copies of a duplicated job
	token   string
	copy    int // 0, or 1 for the duplicate

	timer    *time.Timer // guarded by s.mu
	attempt  int         // sends made so far
	retryEnd time.Time   // set on the first send
}

// schedule arms d to be sent after wait. It reports false, counting d as
// cancelled, when the Server is closed.
func (s *Server) schedule(d *delivery, wait time.Duration) bool {
	if d.attempt == 0 {
		s.pendingN.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.pendingN.Add(-1)
		s.cancelled.Add(1)
		return false
	}
	s.pending[d] = struct{}{}
	d.timer = time.AfterFunc(wait, d.fire)
	return true
}

// fire runs on the timer's goroutine: it sends d once and, if that failed in
// a retryable way and time is left, arms the next attempt.
func (d *delivery) fire() {
	s := d.s
	s.mu.Lock()
	if _, ok := s.pending[d]; !ok { // Close got here first and counted it
		s.mu.Unlock()
		return
	}
	delete(s.pending, d)
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	now := time.Now()
	if d.attempt == 0 {
		d.retryEnd = now.Add(s.cfg.CallbackRetryFor)
	}
	d.attempt++
	status, retryAfter, err := s.send(d)
	switch {
	case err == nil && status >= 200 && status < 300:
		s.sent.Add(1)
		s.pendingN.Add(-1)
		d.log(slog.LevelDebug, "mock callback delivered", "status", status)
		return
	case err == nil && !retryable(status):
		s.failed.Add(1)
		s.pendingN.Add(-1)
		d.log(slog.LevelWarn, "mock callback refused; not retrying", "status", status)
		return
	}
	wait := max(s.backoff(d.attempt), min(retryAfter, maxRetryAfter))
	if time.Now().Add(wait).After(d.retryEnd) {
		s.failed.Add(1)
		s.pendingN.Add(-1)
		d.log(slog.LevelError, "mock callback failed; giving up", "status", status, "error", err,
			"retryFor", s.cfg.CallbackRetryFor)
		return
	}
	s.retried.Add(1)
	d.log(slog.LevelInfo, "mock callback failed; retrying", "status", status, "error", err, "wait", wait)
	s.schedule(d, wait)
}

// log logs about d at level, with its orderId, jobId, attempt and copy.
func (d *delivery) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !d.s.log.Enabled(ctx, level) {
		return
	}
	attrs := append([]any{"orderId", d.orderID, "jobId", d.jobID, "attempt", d.attempt, "copy", d.copy}, args...)
	d.s.log.Log(ctx, level, msg, attrs...)
}

// retryable reports whether a callback answered with status may be retried.
func retryable(status int) bool {
	return status == fasthttp.StatusRequestTimeout ||
		status == fasthttp.StatusTooManyRequests ||
		status >= 500
}

// backoff is the wait before retry number attempt (1-based): 50 ms doubling
// up to 2 s, with "equal jitter" (half fixed, half random).
func (s *Server) backoff(attempt int) time.Duration {
	b := backoffMax
	if attempt <= 6 { // 50ms << 6 > 2s
		b = min(backoffBase<<(attempt-1), backoffMax)
	}
	s.rngMu.Lock()
	j := time.Duration(s.rng.Int64N(int64(b/2) + 1))
	s.rngMu.Unlock()
	return b/2 + j
}

// send POSTs d's body once. It returns the response status and Retry-After
// (0 if absent), or the transport error.
func (s *Server) send(d *delivery) (status int, retryAfter time.Duration, err error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(s.cfg.CallbackURL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if d.token != "" {
		req.Header.Set("X-Callback-Token", d.token)
	}
	req.SetBodyRaw(d.body)
	if err := s.client.Do(req, resp); err != nil {
		return 0, 0, &sendError{url: s.cfg.CallbackURL, err: err}
	}
	if hook := s.cfg.OnCallbackAnswered; hook != nil {
		hook(d.orderID, d.jobID, resp.StatusCode(), resp.Body())
	}
	if secs, err := strconv.Atoi(string(resp.Header.Peek(fasthttp.HeaderRetryAfter))); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode(), retryAfter, nil
}

// sendError is a callback that could not be sent.
type sendError struct {
	url string
	err error
}

func (e *sendError) Error() string { return "mocks: POST " + e.url + ": " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// Close stops the Server: new callouts are answered 503, pending callbacks
// are cancelled (counted in Stats.CallbacksCancelled), and callbacks being
// sent are waited for, at most a few seconds. It is safe to call more than
// once and concurrently with everything else. It returns an error only if
// that wait timed out.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for d := range s.pending {
		// A timer that already fired will find d gone from pending and
		// return; either way d is cancelled here, exactly once.
		d.timer.Stop()
		delete(s.pending, d)
		s.pendingN.Add(-1)
		s.cancelled.Add(1)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return errClosing
	}
	s.client.CloseIdleConnections()
	return nil
}

var errClosing = errors.New("mocks: close: callbacks still being sent after " + closeWait.String())
