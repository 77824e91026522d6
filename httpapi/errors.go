package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/valyala/fasthttp"
)

// apiError is an error answer: an HTTP status and the body's error object.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(code, field, format string, args ...any) *apiError {
	return &apiError{Status: fasthttp.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// retryAfter is the Retry-After (seconds) sent with a 503.
const retryAfter = "1"

// toAPIError maps every error the service returns to one answer. It is the
// only place where errors become statuses.
func toAPIError(err error) *apiError {
	var ae *apiError
	var fe *actors.FieldError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		code := fe.Code
		if code == "" {
			code = "invalid_field"
		}
		return &apiError{Status: fasthttp.StatusBadRequest, Code: code, Field: fe.Field, Message: fe.Error()}
	case errors.Is(err, actors.ErrUnauthorized):
		return &apiError{Status: fasthttp.StatusUnauthorized, Code: "unauthorized", Field: "callbackToken", Message: "callback token is missing or does not match this order and job"}
	case errors.Is(err, actors.ErrNotFound):
		return &apiError{Status: fasthttp.StatusNotFound, Code: "order_not_found", Field: "orderId", Message: err.Error()}
	case errors.Is(err, order.ErrUnknownJob):
		return &apiError{Status: fasthttp.StatusNotFound, Code: "job_not_found", Field: "jobId", Message: err.Error()}
	case errors.Is(err, order.ErrOrderFinished):
		return &apiError{Status: fasthttp.StatusConflict, Code: "order_finished", Message: err.Error()}
	case errors.Is(err, persistence.ErrBadCursor):
		return &apiError{Status: fasthttp.StatusBadRequest, Code: "invalid_field", Field: "cursor", Message: "cursor is not one this server gave out"}
	case errors.Is(err, order.ErrNotRetryable):
		return &apiError{Status: fasthttp.StatusConflict, Code: "not_retryable", Message: err.Error()}
	case errors.Is(err, order.ErrJobConflict):
		return &apiError{Status: fasthttp.StatusConflict, Code: "job_conflict", Field: "status", Message: err.Error()}
	case errors.Is(err, actors.ErrInvalid):
		return &apiError{Status: fasthttp.StatusBadRequest, Code: "invalid_request", Message: err.Error()}
	case errors.Is(err, actors.ErrUnavailable), errors.Is(err, actors.ErrClosed):
		return &apiError{Status: fasthttp.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	default:
		// The details go to the log (Server.fail), not to the client.
		return &apiError{Status: fasthttp.StatusInternalServerError, Code: "internal", Message: "internal error; see the server log"}
	}
}

// writeError answers with the error JSON of DESIGN §3.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	ae := toAPIError(err)
	ctx.SetUserValue(outcomeKey, ae.Code)
	if ae.Status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", retryAfter)
	}
	body, mErr := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{ae})
	if mErr != nil {
		body = []byte(`{"error":{"code":"internal","message":` + strconv.Quote(mErr.Error()) + `}}`)
	}
	writeJSON(ctx, ae.Status, body)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	if status < 300 && ctx.UserValue(outcomeKey) == nil {
		ctx.SetUserValue(outcomeKey, "ok")
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}
