package actors

import (
	"errors"
	"fmt"
)

// Errors returned by Client. Errors from package order (ErrUnknownJob,
// ErrOrderFinished, ErrJobConflict) pass through unchanged; compare with errors.Is.
var (
	// ErrNotFound: no such order, in memory or in the store.
	ErrNotFound = errors.New("actors: order not found")
	// ErrUnavailable: the state change could not be made durable (the store
	// is down, or the order's actor did not answer in time). Nothing was
	// acknowledged; the caller may retry.
	ErrUnavailable = errors.New("actors: unavailable")
	// ErrUnauthorized: a callback's token is missing or wrong.
	ErrUnauthorized = errors.New("actors: callback token missing or invalid")
	// ErrInvalid: the request is malformed; see FieldError for which part.
	ErrInvalid = errors.New("actors: invalid request")
	// ErrClosed: the client has been closed.
	ErrClosed = errors.New("actors: closed")
)

// FieldError says which field of a request is wrong. errors.Is(err, ErrInvalid) holds.
type FieldError struct {
	// Code names the problem in snake_case, e.g. "unknown_job_type"
	// (default "invalid_field").
	Code string
	// Field is a JSON path, e.g. "jobs[1]".
	Field string
	// Msg says what is wrong with it.
	Msg string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }
