package sim

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is one captured HTTP request: one line of a recorded stream.
//
// The body is kept byte for byte, because webhook signatures are computed
// over the exact bytes sent. In JSON it is written as exactly one of three
// fields: body, when the bytes are a compact JSON document; bodyText, for
// other UTF-8 text, such as pretty-printed JSON; bodyBase64 for the rest.
type Request struct {
	// Time is when the server received the request.
	Time time.Time `json:"time"`

	Method string `json:"method"`

	// Path is the request target: the path and the query, as received.
	Path string `json:"path"`

	// Headers are the request headers, with the names Go's HTTP server
	// gives them. A recorder replaces secret values with Redacted.
	Headers http.Header `json:"headers,omitempty"`

	Body []byte `json:"-"`

	// BodyIncomplete marks a body the server did not read to its end, as
	// when it rejects a request before reading the body, or the body is
	// over its limit. Body then holds only the bytes the server read, up
	// to the limit.
	BodyIncomplete bool `json:"bodyIncomplete,omitempty"`

	// Subject is the caller the server authenticated, when it did: the
	// token's subject, or system:serviceaccount:<namespace>:<name> for a
	// verified webhook delivery. Replay acts as this subject.
	Subject string `json:"subject,omitempty"`

	// Status and EventID are what the server returned, when recorded.
	// Replay reuses the event ID, so the Workflow names it derives match
	// the ones the recording server created.
	Status  int    `json:"status,omitempty"`
	EventID string `json:"eventId,omitempty"`

	// Expect is the outcome a replay must produce, when set.
	Expect *Expectation `json:"expect,omitempty"`

	// Line is the request's line in the stream it was read from, or zero.
	Line int `json:"-"`
}

// Expectation is the outcome that replaying one request must produce.
type Expectation struct {
	// Status is the HTTP status. Zero means any.
	Status int `json:"status,omitempty"`

	// Resources are the templates and bindings that create a new Workflow,
	// not one an earlier request of the replay created, as
	// "Kind/namespace/name" ("Kind/name" for a ClusterWorkflowTemplate),
	// in any order. Nil means any, and an empty list means none.
	Resources []string `json:"resources"`
}

// Redacted replaces the value of every secret header and query parameter in
// a recording. Redact lists them.
const Redacted = "REDACTED"

// requestJSON is the JSON form of Request, with the body split into its
// three encodings.
type requestJSON struct {
	Time           time.Time       `json:"time"`
	Method         string          `json:"method"`
	Path           string          `json:"path"`
	Headers        http.Header     `json:"headers,omitempty"`
	Body           json.RawMessage `json:"body,omitempty"`
	BodyText       *string         `json:"bodyText,omitempty"`
	BodyBase64     *string         `json:"bodyBase64,omitempty"`
	BodyIncomplete bool            `json:"bodyIncomplete,omitempty"`
	Subject        string          `json:"subject,omitempty"`
	Status         int             `json:"status,omitempty"`
	EventID        string          `json:"eventId,omitempty"`
	Expect         *Expectation    `json:"expect,omitempty"`
}

// MarshalJSON writes r on one line, with its body in the first of body,
// bodyText and bodyBase64 that keeps every byte.
func (r Request) MarshalJSON() ([]byte, error) {
	out := requestJSON{
		Time:           r.Time,
		Method:         r.Method,
		Path:           r.Path,
		Headers:        r.Headers,
		BodyIncomplete: r.BodyIncomplete,
		Subject:        r.Subject,
		Status:         r.Status,
		EventID:        r.EventID,
		Expect:         r.Expect,
	}
	switch {
	case len(r.Body) == 0:
	case isCompactJSON(r.Body):
		out.Body = r.Body
	case utf8.Valid(r.Body):
		text := string(r.Body)
		out.BodyText = &text
	default:
		encoded := base64.StdEncoding.EncodeToString(r.Body)
		out.BodyBase64 = &encoded
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads a line that MarshalJSON wrote, or one written by hand
// with at most one of the body fields.
func (r *Request) UnmarshalJSON(data []byte) error {
	// Unknown fields are rejected, because a misspelled "expect" or "body"
	// would otherwise be ignored and a CI check pass without checking.
	var in requestJSON
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&in); err != nil {
		return describeJSONError(err)
	}

	set := 0
	var body []byte
	if len(in.Body) > 0 && !bytes.Equal(in.Body, []byte("null")) {
		set++
		// A body written by hand may be indented, and is sent compacted.
		var compact bytes.Buffer
		if err := json.Compact(&compact, in.Body); err != nil {
			return fmt.Errorf("invalid body: %w", err)
		}
		body = compact.Bytes()
	}
	if in.BodyText != nil {
		set++
		body = []byte(*in.BodyText)
	}
	if in.BodyBase64 != nil {
		set++
		decoded, err := base64.StdEncoding.DecodeString(*in.BodyBase64)
		if err != nil {
			return fmt.Errorf("invalid bodyBase64: %w", err)
		}
		body = decoded
	}
	if set > 1 {
		return errors.New("more than one of body, bodyText and bodyBase64 is set: keep one")
	}

	*r = Request{
		Time:           in.Time,
		Method:         in.Method,
		Path:           in.Path,
		Headers:        in.Headers,
		Body:           body,
		BodyIncomplete: in.BodyIncomplete,
		Subject:        in.Subject,
		Status:         in.Status,
		EventID:        in.EventID,
		Expect:         in.Expect,
	}
	return nil
}

// describeJSONError rewords the errors of decoding a line, which name Go
// types, in terms of the line's fields.
func describeJSONError(err error) error {
	if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Errorf("invalid %q: found %s where the format has %s", typeErr.Field, jsonValueName(typeErr.Value), jsonTypeName(typeErr.Type))
	}
	if timeErr, ok := errors.AsType[*time.ParseError](err); ok {
		return fmt.Errorf("invalid \"time\" %q: write the receive time in RFC 3339, such as 2026-12-04T10:00:00Z", timeErr.Value)
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s: the fields are time, method, path, headers, body, bodyText, bodyBase64, bodyIncomplete, subject, status, eventId and expect (with status and resources)", field)
	}
	return err
}

// isCompactJSON reports whether data is one JSON value with no whitespace
// outside strings and no characters that json.Marshal would escape, so it
// survives being embedded in a line of JSON byte for byte.
func isCompactJSON(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil || !bytes.Equal(compact.Bytes(), data) {
		return false
	}
	// json.Marshal re-encodes a RawMessage with HTML escaping, and rewrites
	// invalid UTF-8 and U+2028/U+2029.
	reencoded, err := json.Marshal(json.RawMessage(data))
	return err == nil && bytes.Equal(reencoded, data)
}

// MaxLineBytes bounds one line of a stream. A 2 MiB body, the server's
// default limit, takes about 2.7 MiB in base64.
const MaxLineBytes = 16 << 20

// ReadStream reads a recorded stream: JSON Lines, one Request per line.
// Blank lines are skipped. An error names the line. A line may have up to
// MaxLineBytes bytes.
func ReadStream(r io.Reader) ([]Request, error) {
	return ReadStreamLimit(r, MaxLineBytes)
}

// ReadStreamLimit is ReadStream with lines of up to maxLineBytes bytes,
// for streams recorded with a raised body limit.
func ReadStreamLimit(r io.Reader, maxLineBytes int) ([]Request, error) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), maxLineBytes)

	var requests []Request
	line := 0
	for scanner.Scan() {
		line++
		text := bytes.TrimSpace(scanner.Bytes())
		if len(text) == 0 {
			continue
		}
		var req Request
		if err := json.Unmarshal(text, &req); err != nil {
			if _, syntax := errors.AsType[*json.SyntaxError](err); syntax {
				return nil, fmt.Errorf("line %d: %w: each line must be one JSON object with time, method, path, headers and body", line, err)
			}
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if err := req.validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		req.Line = line
		requests = append(requests, req)
	}
	if err := scanner.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes: raise --max-body-bytes to the recording server's body limit", line+1, maxLineBytes)
		}
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return requests, nil
}

// validate checks the fields replay needs.
func (r Request) validate() error {
	if r.Method == "" {
		return errors.New(`missing "method": set it to the HTTP method, such as POST`)
	}
	if r.Path == "" || r.Path[0] != '/' {
		return fmt.Errorf(`invalid "path" %q: set it to the request path, such as /api/v1/events/argo`, r.Path)
	}
	return nil
}

// StreamWriter writes requests as JSON Lines. It is not safe for
// concurrent use.
type StreamWriter struct {
	w io.Writer
}

// NewStreamWriter returns a StreamWriter that writes to w.
func NewStreamWriter(w io.Writer) *StreamWriter {
	return &StreamWriter{w: w}
}

// Write writes req as one line.
func (s *StreamWriter) Write(req Request) error {
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request %s %s: %w", req.Method, req.Path, err)
	}
	line = append(line, '\n')
	_, err = s.w.Write(line)
	return err
}

// WriteStream writes requests to w as JSON Lines.
func WriteStream(w io.Writer, requests []Request) error {
	sw := NewStreamWriter(w)
	for _, req := range requests {
		if err := sw.Write(req); err != nil {
			return err
		}
	}
	return nil
}
