package order

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON of o to b: the same bytes as json.Marshal(o),
// written without reflection. Every state change of every order is encoded
// once for its snapshot, which makes this the hottest encoder in fanflow.
// It fails where json.Marshal fails: on an invalid status or raw JSON value.
func (o *Order) AppendJSON(b []byte) ([]byte, error) {
	var err error
	if cap(b)-len(b) < minRoom {
		b = slices.Grow(b, o.SizeHint())
	}
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(o.Schema), 10)
	b = append(b, `,"orderId":`...)
	b = appendString(b, o.OrderID)
	b = append(b, `,"status":`...)
	if b, err = appendText(b, o.Status); err != nil {
		return nil, err
	}
	b = append(b, `,"parameters":`...)
	if b, err = appendRaw(b, o.Parameters); err != nil {
		return nil, fmt.Errorf("order %s: parameters: %w", o.OrderID, err)
	}
	b = append(b, `,"jobs":`...)
	if o.Jobs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range o.Jobs {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = o.Jobs[i].appendJSON(b); err != nil {
				return nil, fmt.Errorf("order %s: job %s: %w", o.OrderID, o.Jobs[i].JobID, err)
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"createdAt":`...)
	if b, err = appendTime(b, o.CreatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"updatedAt":`...)
	if b, err = appendTime(b, o.UpdatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"deadline":`...)
	if b, err = appendTime(b, o.Deadline); err != nil {
		return nil, err
	}
	b = append(b, `,"completedAt":`...)
	if b, err = appendTimePtr(b, o.CompletedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"error":`...)
	if o.Error == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"code":`...)
		b = appendString(b, o.Error.Code)
		b = append(b, `,"message":`...)
		b = appendString(b, o.Error.Message)
		b = append(b, '}')
	}
	if o.NotifyURL != "" {
		b = append(b, `,"notifyUrl":`...)
		b = appendString(b, o.NotifyURL)
	}
	if o.Notification != nil {
		b = append(b, `,"notification":`...)
		if b, err = o.Notification.appendJSON(b); err != nil {
			return nil, fmt.Errorf("order %s: notification: %w", o.OrderID, err)
		}
	}
	if o.IdempotencyKey != "" {
		b = append(b, `,"idempotencyKey":`...)
		b = appendString(b, o.IdempotencyKey)
	}
	if o.Retries != 0 {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(o.Retries), 10)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, o.Version, 10)
	return append(b, '}'), nil
}

// minRoom is the free capacity below which AppendJSON first grows b by
// SizeHint: a caller that knows better (the length of the order's previous
// snapshot) passes a buffer with room.
const minRoom = 256

// SizeHint is a little more than the length of o's JSON (without late
// callbacks, compensations and notifications, which are rare), so that it
// is encoded into one allocation.
func (o *Order) SizeHint() int {
	n := 256 + len(o.OrderID) + len(o.Parameters) + len(o.NotifyURL) + len(o.IdempotencyKey)
	for i := range o.Jobs {
		j := &o.Jobs[i]
		n += 160 + len(j.JobID) + len(j.Type) + len(j.Endpoint) + len(j.CancelEndpoint) + len(j.Result) + len(j.Error)
	}
	if o.Error != nil {
		n += len(o.Error.Message)
	}
	return n
}

func (j *Job) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"jobId":`...)
	b = appendString(b, j.JobID)
	b = append(b, `,"type":`...)
	b = appendString(b, j.Type)
	b = append(b, `,"endpoint":`...)
	b = appendString(b, j.Endpoint)
	b = append(b, `,"timeout":`...)
	b = strconv.AppendInt(b, int64(j.Timeout), 10)
	if j.CancelEndpoint != "" {
		b = append(b, `,"cancelEndpoint":`...)
		b = appendString(b, j.CancelEndpoint)
	}
	b = append(b, `,"status":`...)
	if b, err = appendText(b, j.Status); err != nil {
		return nil, err
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(j.Attempts), 10)
	if j.FirstAttempt != 0 {
		b = append(b, `,"firstAttempt":`...)
		b = strconv.AppendInt(b, int64(j.FirstAttempt), 10)
	}
	b = append(b, `,"result":`...)
	if b, err = appendRaw(b, j.Result); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	b = append(b, `,"error":`...)
	if b, err = appendRaw(b, j.Error); err != nil {
		return nil, fmt.Errorf("error: %w", err)
	}
	b = append(b, `,"completedAt":`...)
	if b, err = appendTimePtr(b, j.CompletedAt); err != nil {
		return nil, err
	}
	if j.RetryAt != nil {
		b = append(b, `,"retryAt":`...)
		if b, err = appendTime(b, *j.RetryAt); err != nil {
			return nil, err
		}
	}
	if l := j.LateCallback; l != nil {
		b = append(b, `,"lateCallback":{"at":`...)
		if b, err = appendTime(b, l.At); err != nil {
			return nil, err
		}
		b = append(b, `,"status":`...)
		if b, err = appendText(b, l.Status); err != nil {
			return nil, err
		}
		if len(l.Result) > 0 {
			b = append(b, `,"result":`...)
			if b, err = appendRaw(b, l.Result); err != nil {
				return nil, fmt.Errorf("late callback result: %w", err)
			}
		}
		if len(l.Error) > 0 {
			b = append(b, `,"error":`...)
			if b, err = appendRaw(b, l.Error); err != nil {
				return nil, fmt.Errorf("late callback error: %w", err)
			}
		}
		b = append(b, '}')
	}
	if j.Compensation != nil {
		b = append(b, `,"compensation":`...)
		if b, err = j.Compensation.appendJSON(b); err != nil {
			return nil, fmt.Errorf("compensation: %w", err)
		}
	}
	return append(b, '}'), nil
}

func (d *Delivery) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"status":`...)
	b = appendString(b, string(d.Status))
	if d.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(d.Attempts), 10)
	}
	if d.At != nil {
		b = append(b, `,"at":`...)
		if b, err = appendTime(b, *d.At); err != nil {
			return nil, err
		}
	}
	if d.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, d.Error)
	}
	return append(b, '}'), nil
}

// appendText appends a status as a JSON string, as encoding/json does
// through its MarshalText (status names need no escaping).
func appendText(b []byte, s interface{ appendText([]byte) ([]byte, error) }) ([]byte, error) {
	b, err := s.appendText(append(b, '"'))
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

// appendTime appends t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds), without its allocation; like it, it refuses a year that
// RFC 3339 cannot write.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v: year outside [0,9999]", t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

func appendTimePtr(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	return appendTime(b, *t)
}

// appendString appends s as a JSON string. Plain printable ASCII, which is
// what ids, statuses, types and endpoints are, is copied as it is; anything
// else goes through encoding/json, so that escaping (of quotes, control
// characters, <, >, &, U+2028, U+2029 and invalid UTF-8) is exactly its own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw appends a raw JSON value as encoding/json encodes a
// json.RawMessage: null when empty, else compacted with HTML characters
// escaped. A value that is compact already and has nothing to escape, as
// fanflow's stored values are, is copied as it is.
func appendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	if plainJSON(raw) && json.Valid(raw) {
		return append(b, raw...), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("raw JSON value: %w", err)
	}
	var esc bytes.Buffer
	json.HTMLEscape(&esc, buf.Bytes())
	return append(b, esc.Bytes()...), nil
}

// plainJSON reports whether raw holds no byte that compacting or escaping
// could change: no whitespace or control byte, no <, > or &, nothing
// beyond ASCII.
func plainJSON(raw []byte) bool {
	for _, c := range raw {
		if c <= ' ' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
