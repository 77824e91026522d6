package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/valyala/fastjson"
)

// maxDeadline bounds deadlineMs: an order may wait at most 30 days.
const maxDeadline = 30 * 24 * time.Hour

// checkJSONContentType accepts application/json with optional parameters.
func checkJSONContentType(ct []byte) *apiError {
	if string(ct) == "application/json" { // the usual case, without a parse
		return nil
	}
	mt, _, err := mime.ParseMediaType(string(ct))
	if err != nil || mt != "application/json" {
		return &apiError{Status: 415, Code: "unsupported_media_type", Field: "Content-Type",
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
	}
	return nil
}

// object decodes a body that must be one JSON object into its members.
func object(body []byte) (map[string]json.RawMessage, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, badRequest("invalid_json", "", "request body is empty; a JSON object is required")
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		return nil, badRequest("invalid_json", "", "request body is not valid JSON: %v", err)
	}
	if trimmed[0] != '{' {
		return nil, badRequest("invalid_body", "", "request body must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, badRequest("invalid_json", "", "request body is not valid JSON: %v", err)
	}
	return m, nil
}

// visitObject checks that body is one JSON object, with encoding/json's
// validator, and calls fn for each of its members in order, from one pooled
// fastjson parse. fn must not keep key or v. A body nested deeper than
// fastjson goes (300 levels) is read by encoding/json instead, as it was
// before, so that no request encoding/json accepts is refused.
func visitObject(body []byte, fn func(key []byte, v member)) *apiError {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		_, ae := object(body) // names the problem: empty, not JSON, or not an object
		if ae == nil {
			ae = badRequest("invalid_body", "", "request body must be a JSON object")
		}
		return ae
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(trimmed)
	if err != nil {
		m, ae := object(body) // a repeated member: its last occurrence, as fastjson's
		if ae != nil {
			return ae
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fn([]byte(k), member{raw: m[k]})
		}
		return nil
	}
	v.GetObject().Visit(func(key []byte, v *fastjson.Value) { fn(key, member{fv: v}) })
	return nil
}

// member is the value of one member of a request body: from the fastjson
// parse, or from encoding/json for a body too deep for fastjson.
type member struct {
	fv  *fastjson.Value
	raw json.RawMessage
}

// JSON returns the member's JSON as it was sent, without whitespace, in a
// buffer of its own (fasthttp reuses the request's). It never asks a
// fastjson value for its type: fastjson would then unescape a string and
// write it back Go-quoted, which is not always JSON.
func (m member) JSON() json.RawMessage {
	if m.fv != nil {
		return m.fv.MarshalTo(nil)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, m.raw); err != nil { // it was validated
		return append(json.RawMessage(nil), m.raw...)
	}
	return b.Bytes()
}

// members reads a body that must be one JSON object and returns the
// members named in allowed, each as its compact JSON in a buffer of its own
// (a null one too). Any other member is an unknown_field error naming it.
// A repeated member counts by its last occurrence.
func members(body []byte, allowed ...string) (map[string]json.RawMessage, *apiError) {
	m := make(map[string]json.RawMessage, len(allowed))
	var unknown string
	ae := visitObject(body, func(key []byte, v member) {
		if !slices.Contains(allowed, string(key)) {
			if unknown == "" {
				unknown = string(key)
			}
			return
		}
		m[string(key)] = v.JSON()
	})
	if ae != nil {
		return nil, ae
	}
	if unknown != "" {
		return nil, badRequest("unknown_field", unknown, "unknown field %q; allowed: %s", unknown, strings.Join(allowed, ", "))
	}
	return m, nil
}

func isObject(v json.RawMessage) bool {
	t := bytes.TrimSpace(v)
	return len(t) > 0 && t[0] == '{'
}

// parseCreate turns a create body into a SubmitRequest. Like a callback,
// it is read with encoding/json's validator and one pooled fastjson parse.
func parseCreate(body []byte) (actors.SubmitRequest, *apiError) {
	var req actors.SubmitRequest
	m, ae := members(body, "parameters", "jobs", "deadlineMs", "notifyUrl")
	if ae != nil {
		return req, ae
	}
	params, ok := m["parameters"]
	switch {
	case !ok:
		return req, badRequest("missing_field", "parameters", "parameters is required and must be a JSON object")
	case !isObject(params):
		return req, badRequest("invalid_field", "parameters", "parameters must be a JSON object")
	}
	req.Parameters = params
	if raw, ok := m["jobs"]; ok {
		var names []*string
		if err := json.Unmarshal(raw, &names); err != nil || names == nil {
			return req, badRequest("invalid_field", "jobs", "jobs must be an array of job type names")
		}
		req.Jobs = make([]string, len(names))
		for i, n := range names {
			if n == nil || *n == "" {
				return req, badRequest("invalid_field", fmt.Sprintf("jobs[%d]", i), "jobs[%d] must be a job type name", i)
			}
			req.Jobs[i] = *n
		}
	}
	if raw, ok := m["deadlineMs"]; ok {
		var ms int64
		if err := json.Unmarshal(raw, &ms); err != nil || ms <= 0 || ms > maxDeadline.Milliseconds() {
			// Compared in milliseconds: ms*time.Millisecond can overflow and wrap.
			return req, badRequest("invalid_field", "deadlineMs", "deadlineMs must be an integer from 1 to %d (milliseconds)", maxDeadline.Milliseconds())
		}
		req.Deadline = time.Duration(ms) * time.Millisecond
	}
	if raw, ok := m["notifyUrl"]; ok {
		u, err := parseURL(raw)
		if err != nil {
			return req, badRequest("invalid_field", "notifyUrl", "notifyUrl must be an absolute http or https URL: %v", err)
		}
		req.NotifyURL = u
	}
	return req, nil
}

func parseURL(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("not a string")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("%q has no http(s) scheme or host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q has an invalid port", s)
		}
	}
	return s, nil
}

// parseCancel reads the optional cancel body {"reason": "…"}.
func parseCancel(body []byte) (string, *apiError) {
	m, ae := object(body)
	if ae != nil {
		return "", ae
	}
	var reason string
	for k, v := range m {
		if k != "reason" {
			return "", badRequest("unknown_field", k, "unknown field %q; allowed: reason", k)
		}
		if err := json.Unmarshal(v, &reason); err != nil {
			return "", badRequest("invalid_field", "reason", "reason must be a string")
		}
	}
	return reason, nil
}

// parseCallback turns a callback body (and the token header) into a
// CallbackRequest. It is on the hot path (every job calls back once): the
// body is checked by encoding/json's validator, then parsed once with a
// pooled fastjson parser. Member names match exactly (a struct would match
// them case-insensitively), a repeated member counts by its last
// occurrence, as in a map; job services echo the whole callout body, so
// other members are allowed and ignored.
func parseCallback(body, tokenHeader []byte) (actors.CallbackRequest, *apiError) {
	var req actors.CallbackRequest
	// Each member's JSON as it was sent, compact; nil when absent or null.
	var cb struct{ orderID, jobID, token, status, result, errv json.RawMessage }
	ae := visitObject(body, func(key []byte, v member) {
		switch string(key) {
		case "orderId":
			cb.orderID = rawMember(v)
		case "jobId":
			cb.jobID = rawMember(v)
		case "callbackToken":
			cb.token = rawMember(v)
		case "status":
			cb.status = rawMember(v)
		case "result":
			cb.result = rawMember(v)
		case "error":
			cb.errv = rawMember(v)
		}
	})
	if ae != nil {
		return req, ae
	}
	if req.OrderID, ae = requiredString(cb.orderID, "orderId"); ae != nil {
		return req, ae
	}
	if req.JobID, ae = requiredString(cb.jobID, "jobId"); ae != nil {
		return req, ae
	}
	// The body's token wins; an absent, null or empty one defers to the header.
	req.Token = string(tokenHeader)
	if cb.token != nil {
		tok, ok := stringValue(cb.token)
		if !ok {
			return req, badRequest("invalid_field", "callbackToken", "callbackToken must be a string")
		}
		if tok != "" {
			req.Token = tok
		}
	}
	if cb.status != nil {
		s, _ := stringValue(cb.status)
		switch s {
		case "completed":
		case "failed":
			req.Failed = true
		default:
			return req, badRequest("invalid_field", "status", `status must be "completed" or "failed"`)
		}
	}
	req.Result, req.Error = cb.result, cb.errv
	return req, nil
}

// parsers are reused across requests: a parser keeps its buffers.
var parsers fastjson.ParserPool

// rawMember returns a member's JSON as it was sent, or nil for null.
func rawMember(v member) json.RawMessage {
	raw := v.JSON()
	if string(raw) == "null" {
		return nil
	}
	return raw
}

// stringValue returns the value of a JSON string as encoding/json reads it,
// or false if raw is not a string. Plain ASCII without escapes, which ids
// and tokens are, is taken as it is; anything else is read by encoding/json
// itself, so that escapes, invalid UTF-8 and lone surrogates come out the same.
func stringValue(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if plainASCII(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func plainASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

func requiredString(raw json.RawMessage, field string) (string, *apiError) {
	if raw == nil {
		return "", badRequest("missing_field", field, "%s is required", field)
	}
	s, ok := stringValue(raw)
	if !ok || s == "" {
		return "", badRequest("invalid_field", field, "%s must be a non-empty string", field)
	}
	return s, nil
}
