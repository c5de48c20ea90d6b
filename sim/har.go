package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// eventsPathPrefix starts the path of every request to the events endpoint.
const eventsPathPrefix = "/api/v1/events/"

// HAROptions configures ReadHAR.
type HAROptions struct {
	// AllPaths keeps every entry. Without it, only requests to the events
	// endpoint, whose path starts with /api/v1/events/, are kept.
	AllPaths bool
}

// harLog is the part of a HAR 1.2 file, the HTTP Archive format, that
// ReadHAR reads. Entries are decoded one by one into harEntry, so that an
// error can name the index of the entry.
type harLog struct {
	Log *struct {
		Entries []json.RawMessage `json:"entries"`
	} `json:"log"`
}

type harEntry struct {
	StartedDateTime string       `json:"startedDateTime"`
	Request         *harRequest  `json:"request"`
	Response        *harResponse `json:"response"`
}

type harRequest struct {
	Method   string       `json:"method"`
	URL      string       `json:"url"`
	Headers  []harHeader  `json:"headers"`
	PostData *harPostData `json:"postData"`
}

type harHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// harPostData is the request body. HAR 1.2 has no encoding field here, but
// some tools write the body in base64 with "encoding": "base64", as HAR
// does for response content.
type harPostData struct {
	Text     *string           `json:"text"`
	Encoding string            `json:"encoding"`
	Params   []json.RawMessage `json:"params"`
}

type harResponse struct {
	Status  int         `json:"status"`
	Headers []harHeader `json:"headers"`
}

// ReadHAR reads the requests of a HAR 1.2 file, as browsers and proxies
// export them, in the order of log.entries. Each entry gives the time
// (startedDateTime), the method, the path and query of the URL, the
// headers, the body (postData.text) and the response status, and the event
// ID when the response has an X-Event-Id header. Credentials are redacted
// with Redact.
//
// Headers keep the names Go's HTTP server gives them: canonical, without
// HTTP/2 pseudo-headers such as :authority, and without Host. An error
// names the entry and the field, and a value of the wrong JSON type gets
// the type the field must have.
//
// ReadHAR also returns the number of entries in the file, kept or not, so
// that a caller can tell a file without entries from one whose entries are
// all to other paths.
func ReadHAR(r io.Reader, opts HAROptions) (requests []Request, entries int, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, fmt.Errorf("read HAR: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, 0, errors.New(`invalid HAR: the file is empty: a HAR file is one JSON object {"log": {"entries": [...]}}`)
	}
	var har harLog
	if err := json.Unmarshal(data, &har); err != nil {
		return nil, 0, newHARJSONError(err, data, reflect.TypeFor[harLog](), "")
	}
	if har.Log == nil {
		return nil, 0, errors.New(`invalid HAR: missing "log": a HAR file is one JSON object {"log": {"entries": [...]}}`)
	}

	requests = []Request{}
	for i, raw := range har.Log.Entries {
		path := fmt.Sprintf("log.entries[%d]", i)
		var entry harEntry
		if err := json.Unmarshal(raw, &entry); err != nil {
			return nil, 0, newHARJSONError(err, raw, reflect.TypeFor[harEntry](), path)
		}
		req, err := entry.request()
		if err != nil {
			return nil, 0, fmt.Errorf("%s.%w", path, err)
		}
		if !opts.AllPaths && !strings.HasPrefix(req.Path, eventsPathPrefix) {
			continue
		}
		Redact(&req)
		requests = append(requests, req)
	}
	return requests, len(har.Log.Entries), nil
}

// request converts the entry. Its errors start with the field's path
// inside the entry.
func (e harEntry) request() (Request, error) {
	if e.Request == nil {
		return Request{}, errors.New("request: missing")
	}
	if e.StartedDateTime == "" {
		return Request{}, errors.New("startedDateTime: missing")
	}
	started, err := time.Parse(time.RFC3339, e.StartedDateTime)
	if err != nil {
		return Request{}, fmt.Errorf("startedDateTime: invalid time %q: use ISO 8601, such as 2026-12-04T10:00:00.000Z", e.StartedDateTime)
	}
	if e.Request.Method == "" {
		return Request{}, errors.New("request.method: missing")
	}
	target, err := requestTarget(e.Request.URL)
	if err != nil {
		return Request{}, fmt.Errorf("request.url: %w", err)
	}
	body, err := e.Request.PostData.body()
	if err != nil {
		return Request{}, fmt.Errorf("request.postData.%w", err)
	}

	req := Request{
		Time:    started,
		Method:  e.Request.Method,
		Path:    target,
		Headers: serverHeaders(e.Request.Headers),
		Body:    body,
	}
	if e.Response != nil {
		req.Status = e.Response.Status
		req.EventID = serverHeaders(e.Response.Headers).Get("X-Event-Id")
	}
	return req, nil
}

// requestTarget returns the path and query of rawURL, without its scheme,
// host and fragment.
func requestTarget(rawURL string) (string, error) {
	if rawURL == "" {
		return "", errors.New("missing")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	if u.Opaque != "" {
		return "", fmt.Errorf("invalid URL %q: use an http URL such as http://host/api/v1/events/argo", rawURL)
	}
	return u.RequestURI(), nil
}

// body returns the bytes of the request body. Its errors start with the
// field inside postData.
func (p *harPostData) body() ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	if p.Text == nil {
		if len(p.Params) > 0 {
			return nil, errors.New("text: missing, and params cannot restore the exact body: export the HAR with request bodies as text")
		}
		return nil, nil
	}
	switch p.Encoding {
	case "":
		return []byte(*p.Text), nil
	case "base64":
		decoded, err := base64.StdEncoding.DecodeString(*p.Text)
		if err != nil {
			return nil, fmt.Errorf("text: invalid base64: %w", err)
		}
		return decoded, nil
	}
	return nil, fmt.Errorf("encoding: unsupported %q: the body must be plain text or base64", p.Encoding)
}

// serverHeaders returns headers as Go's HTTP server would give them to a
// handler: names in canonical form, with no pseudo-headers and no Host.
func serverHeaders(headers []harHeader) http.Header {
	out := http.Header{}
	for _, header := range headers {
		name := http.CanonicalHeaderKey(header.Name)
		if strings.HasPrefix(name, ":") || name == "Host" {
			continue
		}
		out.Add(name, header.Value)
	}
	return out
}
