package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// eventsPrefix is the path prefix of the events endpoint.
const eventsPrefix = "/api/v1/events/"

// maxShown bounds how much of a body a result line repeats.
const maxShown = 160

// codeByStatus is the gRPC code an error body carries for each HTTP status,
// as Argo's gateway writes them.
var codeByStatus = map[int]int{
	http.StatusBadRequest:            3,
	http.StatusUnauthorized:          16,
	http.StatusForbidden:             7,
	http.StatusNotFound:              5,
	http.StatusMethodNotAllowed:      12,
	http.StatusRequestEntityTooLarge: 8,
	http.StatusInternalServerError:   13,
	http.StatusServiceUnavailable:    14,
}

// request is one HTTP request the suite sends.
type request struct {
	method string
	path   string // escaped path and query, such as /api/v1/events/argo?dryRun=All
	body   []byte

	// header is sent as it is, so a key may keep a case that Go would
	// otherwise canonicalize.
	header http.Header

	// token is sent as Authorization: Bearer <token> unless it is empty.
	token string
}

// response is the status, headers and body the server returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

// exchange is one request to the events endpoint with its response and
// duration, kept for the checks over every response of the run.
type exchange struct {
	request  request
	response *response
	elapsed  time.Duration
}

// run is the state of one run of the suite: the target, what setup found
// out about the server, and what the checks share.
type run struct {
	target Target

	// Set by setup.
	dryRun        bool
	listWorkflows func(ctx context.Context, namespace string) ([]*unstructured.Unstructured, error)
	listSource    string
	resources     map[string]bool // suite resources found in the namespace, by name
	resourcesHow  string          // source of resources, for skip messages
	installed     bool
	subject       string
	removers      []func(context.Context) error

	// observations caches the evaluations that several checks share.
	observations map[string]observationResult

	// fanout is the shared event of the fanout templates, once sent.
	fanout *cachedEvent

	// pipeline holds the events of pipeline.bounded, for
	// pipeline.processed-once.
	pipeline *pipelineRun

	mu        sync.Mutex
	exchanges []exchange
}

func newRun(target Target) *run {
	return &run{target: target, observations: make(map[string]observationResult)}
}

// send sends req and reads the whole response. A request to the events
// endpoint is recorded with its response and duration.
func (r *run) send(ctx context.Context, req request) (*response, error) {
	httpReq, err := http.NewRequestWithContext(ctx, req.method, r.target.URL+req.path, bytes.NewReader(req.body))
	if err != nil {
		return nil, fmt.Errorf("build request %s: %w", describe(req), err)
	}
	for name, values := range req.header {
		httpReq.Header[name] = values
	}
	if req.token != "" {
		httpReq.Header.Set("Authorization", "Bearer "+req.token)
	}

	start := time.Now()
	httpResp, err := r.target.Client.Do(httpReq)
	if err != nil {
		r.record(req, nil, time.Since(start))
		return nil, fmt.Errorf("sent %s, got error: %w", describe(req), err)
	}
	defer httpResp.Body.Close()
	body, err := io.ReadAll(httpResp.Body)
	elapsed := time.Since(start)
	if err != nil {
		r.record(req, nil, elapsed)
		return nil, fmt.Errorf("sent %s, got status %d and error reading the body: %w", describe(req), httpResp.StatusCode, err)
	}

	resp := &response{status: httpResp.StatusCode, header: httpResp.Header, body: body}
	r.record(req, resp, elapsed)
	return resp, nil
}

func (r *run) record(req request, resp *response, elapsed time.Duration) {
	if !strings.HasPrefix(req.path, eventsPrefix) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, exchange{request: req, response: resp, elapsed: elapsed})
}

// recorded returns the exchanges with the events endpoint so far.
func (r *run) recorded() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.exchanges)
}

// eventPath returns the events path of namespace and discriminator, with
// no trailing slash when the discriminator is empty.
func eventPath(namespace, discriminator string) string {
	path := eventsPrefix + url.PathEscape(namespace)
	if discriminator != "" {
		path += "/" + url.PathEscape(discriminator)
	}
	return path
}

// post returns a POST of body to path with the target's token.
func (r *run) post(path, body string) request {
	return request{method: http.MethodPost, path: path, body: []byte(body), token: r.target.Token}
}

// describe formats a request for a result line: method, path, the start
// of the body, and the headers the suite set.
func describe(req request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", req.method, req.path)
	switch {
	case len(req.body) == 0:
		b.WriteString(" with an empty body")
	case len(req.body) > maxShown:
		fmt.Fprintf(&b, " with a body of %d bytes", len(req.body))
	default:
		fmt.Fprintf(&b, " %s", req.body)
	}

	var names []string
	for name := range req.header {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 0 {
		fmt.Fprintf(&b, " and headers %s", strings.Join(names, ", "))
	}
	if req.token == "" && req.header.Get("Authorization") == "" {
		b.WriteString(" without a token")
	}
	return b.String()
}

// describeResponse formats a response for a result line: the status and
// the start of the body.
func describeResponse(resp *response) string {
	body := strings.TrimSpace(string(resp.body))
	if len(body) > maxShown {
		body = body[:maxShown] + "…"
	}
	if body == "" {
		return fmt.Sprintf("%d with an empty body", resp.status)
	}
	return fmt.Sprintf("%d %s", resp.status, body)
}

// unexpected is the error of a check that got resp to req and wanted
// something else.
func unexpected(req request, resp *response, want string, args ...any) error {
	return fmt.Errorf("sent %s, got %s, want %s", describe(req), describeResponse(resp), fmt.Sprintf(want, args...))
}

// expectStatus checks that resp has status.
func expectStatus(req request, resp *response, status int) error {
	if resp.status != status {
		return unexpected(req, resp, "%d", status)
	}
	return nil
}

// checkErrorBody checks that resp is a JSON error body whose code belongs
// to its status, with a message. It returns what is wrong, or "".
func checkErrorBody(resp *response) string {
	mediaType, _, _ := mime.ParseMediaType(resp.header.Get("Content-Type"))
	if mediaType != "application/json" {
		return fmt.Sprintf("Content-Type application/json, not %q", resp.header.Get("Content-Type"))
	}
	body, err := decodeObject(resp.body)
	if err != nil {
		return fmt.Sprintf("a JSON object with code and message (%v)", err)
	}

	// decodeObject keeps numbers as json.Number, so a quoted code stays a
	// string and is rejected.
	number, isNumber := body["code"].(json.Number)
	code, err := number.Int64()
	if !isNumber || err != nil {
		shown, _ := json.Marshal(body["code"])
		return fmt.Sprintf("an integer code, not %s", shown)
	}
	if want, known := codeByStatus[resp.status]; known && int64(want) != code {
		return fmt.Sprintf("code %d with status %d, not %d", want, resp.status, code)
	}
	if message, _ := body["message"].(string); strings.TrimSpace(message) == "" {
		return "a non-empty message"
	}
	return ""
}

// expectError checks that resp has status and a well-formed error body
// with the gRPC code of that status.
func expectError(req request, resp *response, status int) error {
	want := fmt.Sprintf("%d with code %d", status, codeByStatus[status])
	if resp.status != status {
		return unexpected(req, resp, "%s", want)
	}
	if problem := checkErrorBody(resp); problem != "" {
		return unexpected(req, resp, "%s and %s", want, problem)
	}
	return nil
}

// decodeObject decodes a JSON object body, keeping numbers exact.
func decodeObject(body []byte) (map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber()
	var object map[string]any
	if err := decoder.Decode(&object); err != nil {
		return nil, err
	}
	if object == nil {
		return nil, errors.New("body is null, not a JSON object")
	}
	return object, nil
}
