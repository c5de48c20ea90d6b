package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/server/mocks"
)

const (
	// testToken is the bearer token of every authenticated request. No
	// response body or log line may contain it.
	testToken = "s3cret-token-value"

	testEventID = "event-1"

	// formContentType is what curl -d sends. The handler must ignore it.
	formContentType = "application/x-www-form-urlencoded"

	// waitTimeout bounds every wait for a handler running on another
	// goroutine. It only matters when a test is about to fail.
	waitTimeout = 10 * time.Second
)

var (
	testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	// argoCaller may use the namespace "argo" only.
	argoCaller = model.Identity{
		Subject:    "system:serviceaccount:argo:github",
		UID:        "uid-1",
		Groups:     []string{"system:serviceaccounts"},
		Namespaces: []string{"argo"},
	}

	// clusterCaller may use every namespace and the empty one.
	clusterCaller = model.Identity{Subject: "admin", AllNamespaces: true}
)

// harness is a Server wired to strict mocks. A mock call that a test did not
// expect fails the test, so a case that sets no expectation on Queue also
// proves that nothing was queued.
type harness struct {
	auth      *mocks.Authenticator
	queue     *mocks.Queue
	workflows *mocks.WorkflowLister
	server    *server.Server
}

// newHarness returns a harness whose Server logs to the test log at Debug,
// reads its time from testNow and numbers every event testEventID. configure,
// if given, changes the Config before server.New validates it.
func newHarness(t testing.TB, configure ...func(*server.Config)) *harness {
	t.Helper()

	h := &harness{
		auth:      mocks.NewAuthenticator(t),
		queue:     mocks.NewQueue(t),
		workflows: mocks.NewWorkflowLister(t),
	}
	cfg := server.Config{
		Authenticator: h.auth,
		Queue:         h.queue,
		Workflows:     h.workflows,
		Logger:        newTestLogger(t, t.Output()),
		Now:           func() time.Time { return testNow },
		NewEventID:    func() string { return testEventID },
	}
	for _, change := range configure {
		change(&cfg)
	}

	s, err := server.New(cfg)
	require.NoError(t, err)
	h.server = s
	return h
}

func newTestLogger(t testing.TB, w io.Writer) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// expectCaller makes the authenticator resolve testToken to caller once.
func (h *harness) expectCaller(caller model.Identity) {
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(caller, nil).Once()
}

// expectEnqueue makes the queue accept one event and returns where that
// event is stored once the handler has queued it.
func (h *harness) expectEnqueue() *model.Event {
	queued := new(model.Event)
	h.queue.EXPECT().Enqueue(mock.Anything).RunAndReturn(func(ev model.Event) error {
		*queued = ev
		return nil
	}).Once()
	return queued
}

// serve runs the request through the Server on the calling goroutine.
func (h *harness) serve(t testing.TB, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.server.ServeHTTP(rec, req)
	return rec
}

// newEventRequest returns a request that carries testToken and, like curl -d,
// a form Content-Type.
func newEventRequest(t testing.TB, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", formContentType)
	return req
}

// decodeError checks that the response is a JSON error body that does not
// contain testToken, and returns it decoded.
func decodeError(t testing.TB, rec *httptest.ResponseRecorder) server.ErrorResponse {
	t.Helper()

	raw := rec.Body.String()
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.NotContains(t, raw, testToken, "error body contains the token")

	var body server.ErrorResponse
	decoder := json.NewDecoder(strings.NewReader(raw))
	decoder.DisallowUnknownFields()
	require.NoError(t, decoder.Decode(&body), "error body: %s", raw)
	require.NotEmpty(t, body.Message, "error body: %s", raw)
	return body
}

// unreadBody is a request body that fails the test when it is read, to prove
// that a request was rejected before its body was read.
type unreadBody struct{ t testing.TB }

func (b unreadBody) Read([]byte) (int, error) {
	b.t.Error("request body was read")
	return 0, errors.New("read unreadBody: must not be read")
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// failingReader returns err on the first read.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestNewConfig(t *testing.T) {
	auth := mocks.NewAuthenticator(t)
	queue := mocks.NewQueue(t)

	tests := []struct {
		name    string
		cfg     server.Config
		wantErr string // substring of the error; "" means no error
	}{
		{name: "valid", cfg: server.Config{Authenticator: auth, Queue: queue}},
		{name: "missing authenticator", cfg: server.Config{Queue: queue}, wantErr: "Config.Authenticator"},
		{name: "missing queue", cfg: server.Config{Authenticator: auth}, wantErr: "Config.Queue"},
		{name: "negative body limit", cfg: server.Config{Authenticator: auth, Queue: queue, MaxBodyBytes: -1}, wantErr: "Config.MaxBodyBytes"},
		{name: "negative timeout", cfg: server.Config{Authenticator: auth, Queue: queue, AdmissionTimeout: -time.Second}, wantErr: "Config.AdmissionTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := server.New(tt.cfg)

			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.NotNil(t, s)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Nil(t, s)
		})
	}
}

func TestEventRoutes(t *testing.T) {
	tests := []struct {
		name              string
		path              string
		caller            model.Identity
		wantNamespace     string
		wantDiscriminator string
	}{
		{name: "namespace", path: "/api/v1/events/argo", caller: argoCaller, wantNamespace: "argo"},
		{name: "trailing slash", path: "/api/v1/events/argo/", caller: argoCaller, wantNamespace: "argo"},
		{name: "discriminator", path: "/api/v1/events/argo/github", caller: argoCaller, wantNamespace: "argo", wantDiscriminator: "github"},
		{name: "cluster", path: "/api/v1/events/", caller: clusterCaller},
		{name: "cluster discriminator", path: "/api/v1/events//github", caller: clusterCaller, wantDiscriminator: "github"},
		{name: "query ignored", path: "/api/v1/events/argo/github?x=1", caller: argoCaller, wantNamespace: "argo", wantDiscriminator: "github"},
		{name: "escaped slash", path: "/api/v1/events/argo/a%2Fb", caller: argoCaller, wantNamespace: "argo", wantDiscriminator: "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(tt.caller)
			queued := h.expectEnqueue()

			rec := h.serve(t, newEventRequest(t, http.MethodPost, tt.path, strings.NewReader(`{"ref":"main"}`)))

			require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, testEventID, rec.Header().Get("X-Event-Id"))
			assert.JSONEq(t, `{"eventId":"event-1"}`, rec.Body.String())

			want := model.Event{
				ID:            testEventID,
				Namespace:     tt.wantNamespace,
				Discriminator: tt.wantDiscriminator,
				Payload:       map[string]any{"ref": "main"},
				Headers:       map[string][]string{"Content-Type": {formContentType}},
				Caller:        tt.caller,
				ReceivedAt:    testNow,
			}
			assert.Equal(t, want, *queued)
		})
	}
}

// TestEventRoutesOverHTTP sends the cluster-scoped forms, whose paths have an
// empty segment, through a real client and server. http.ServeMux would send
// a redirect for them, which clients do not follow for POST.
func TestEventRoutesOverHTTP(t *testing.T) {
	tests := []struct {
		name              string
		path              string
		wantDiscriminator string
	}{
		{name: "cluster", path: "/api/v1/events/"},
		{name: "cluster discriminator", path: "/api/v1/events//github", wantDiscriminator: "github"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(clusterCaller)
			queued := h.expectEnqueue()
			ts := httptest.NewServer(h.server)
			t.Cleanup(ts.Close)
			client := ts.Client()
			client.Timeout = waitTimeout
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+tt.path, strings.NewReader(`[1]`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+testToken)

			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()

			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, testEventID, resp.Header.Get("X-Event-Id"))
			assert.Empty(t, queued.Namespace)
			assert.Equal(t, tt.wantDiscriminator, queued.Discriminator)
			assert.Equal(t, []any{int64(1)}, queued.Payload)
		})
	}
}

func TestEventPayload(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantPayload any
	}{
		{
			name:        "object",
			body:        `{"a":{"b":[1,1.5,"x",true,null]}}`,
			wantPayload: map[string]any{"a": map[string]any{"b": []any{int64(1), 1.5, "x", true, nil}}},
		},
		{name: "array", body: `[1,"two"]`, wantPayload: []any{int64(1), "two"}},
		{name: "string", body: `"hello"`, wantPayload: "hello"},
		{name: "integer", body: `42`, wantPayload: int64(42)},
		{name: "negative integer", body: `-7`, wantPayload: int64(-7)},
		{name: "int64 beyond float precision", body: `9007199254740993`, wantPayload: int64(9007199254740993)},
		{name: "integer beyond int64", body: `12345678901234567890123`, wantPayload: 12345678901234567890123.0},
		{name: "float", body: `2.5e3`, wantPayload: 2500.0},
		{name: "true", body: `true`, wantPayload: true},
		{name: "false", body: `false`, wantPayload: false},
		{name: "null", body: `null`, wantPayload: nil},
		{name: "empty", body: ``, wantPayload: nil},
		{name: "whitespace only", body: " \n\t", wantPayload: nil},
		{name: "trailing newline", body: "{}\n", wantPayload: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(argoCaller)
			queued := h.expectEnqueue()

			rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(tt.body)))

			require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
			assert.Equal(t, tt.wantPayload, queued.Payload)
		})
	}
}

func TestEventHeaders(t *testing.T) {
	h := newHarness(t)
	h.expectCaller(argoCaller)
	queued := h.expectEnqueue()
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`))
	req.Header.Set("Cookie", "session=abc")
	req.Header.Set("Proxy-Authorization", "Basic dXNlcjpwYXNz")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	want := map[string][]string{
		"Content-Type":   {formContentType},
		"X-Github-Event": {"push"},
		"X-Multi":        {"a", "b"},
	}
	assert.Equal(t, want, queued.Headers)
}

func TestEventBearerScheme(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
	}{
		{name: "canonical", authorization: "Bearer " + testToken},
		{name: "lower case", authorization: "bearer " + testToken},
		{name: "extra spaces", authorization: "Bearer   " + testToken + "  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(argoCaller)
			h.expectEnqueue()
			req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", nil)
			req.Header.Set("Authorization", tt.authorization)

			rec := h.serve(t, req)

			assert.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
		})
	}
}

func TestEventDefaultID(t *testing.T) {
	h := newHarness(t, func(cfg *server.Config) { cfg.NewEventID = nil })
	h.expectCaller(argoCaller)
	queued := h.expectEnqueue()

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", nil))

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	_, err := uuid.Parse(queued.ID)
	assert.NoError(t, err, "event ID %q", queued.ID)
	assert.Equal(t, queued.ID, rec.Header().Get("X-Event-Id"))
}

func TestEventBadRequest(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		body        string
		wantMessage string // substring of the error message
	}{
		{name: "invalid JSON", path: "/api/v1/events/argo", body: `{"a":}`, wantMessage: "invalid character '}'"},
		{name: "unterminated JSON", path: "/api/v1/events/argo", body: `{"a":1`, wantMessage: "invalid JSON"},
		{name: "second value", path: "/api/v1/events/argo", body: `{} {}`, wantMessage: "unexpected data after the first value"},
		{name: "trailing bytes", path: "/api/v1/events/argo", body: `{}x`, wantMessage: "unexpected data after the first value"},
		{name: "form body", path: "/api/v1/events/argo", body: `a=1&b=2`, wantMessage: "invalid character 'a'"},
		{name: "invalid namespace", path: "/api/v1/events/Bad_NS", body: `{}`, wantMessage: `"Bad_NS"`},
		{name: "invalid namespace discriminator", path: "/api/v1/events/Bad_NS/github", body: `{}`, wantMessage: `"Bad_NS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			// The namespace is checked before authentication, so only the
			// cases with a valid namespace call the authenticator.
			h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(argoCaller, nil).Maybe()

			rec := h.serve(t, newEventRequest(t, http.MethodPost, tt.path, strings.NewReader(tt.body)))

			assert.Equal(t, http.StatusBadRequest, rec.Code)
			body := decodeError(t, rec)
			assert.Equal(t, model.CodeInvalid, body.Code)
			assert.Contains(t, body.Message, tt.wantMessage)
		})
	}
}

func TestEventBodyReadError(t *testing.T) {
	h := newHarness(t)
	h.expectCaller(argoCaller)
	cause := errors.New("connection reset by 10.1.2.3")
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", failingReader{err: cause})

	rec := h.serve(t, req)

	assert.Equal(t, http.StatusBadRequest, rec.Code)
	body := decodeError(t, rec)
	assert.Equal(t, model.CodeInvalid, body.Code)
	assert.Equal(t, "read request body failed", body.Message)
}

func TestEventUnauthenticated(t *testing.T) {
	unknownToken := model.Errorf(model.CodeUnauthenticated, "token is not valid")

	tests := []struct {
		name          string
		authorization string // "" sends no Authorization header
		authErr       error  // the authenticator's error; nil means it is not called
		wantMessage   string // substring of the error message
	}{
		{name: "missing", wantMessage: "missing Authorization header"},
		{name: "basic", authorization: "Basic dXNlcjpwYXNz", wantMessage: "malformed Authorization header"},
		{name: "bearer without token", authorization: "Bearer", wantMessage: "malformed Authorization header"},
		{name: "bearer blank token", authorization: "Bearer   ", wantMessage: "malformed Authorization header"},
		{name: "token without scheme", authorization: testToken, wantMessage: "malformed Authorization header"},
		{name: "unknown token", authorization: "Bearer " + testToken, authErr: unknownToken, wantMessage: "token is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.authErr != nil {
				h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(model.Identity{}, tt.authErr).Once()
			}
			req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t})
			req.Header.Del("Authorization")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}

			rec := h.serve(t, req)

			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			body := decodeError(t, rec)
			assert.Equal(t, model.CodeUnauthenticated, body.Code)
			assert.Contains(t, body.Message, tt.wantMessage)
			assert.NotContains(t, body.Message, "dXNlcjpwYXNz")
		})
	}
}

func TestEventForbidden(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		wantMessage string // substring of the error message
	}{
		{name: "other namespace", path: "/api/v1/events/other", wantMessage: `namespace "other"`},
		{name: "other namespace discriminator", path: "/api/v1/events/other/github", wantMessage: `namespace "other"`},
		{name: "cluster", path: "/api/v1/events/", wantMessage: "cluster-scoped"},
		{name: "cluster discriminator", path: "/api/v1/events//github", wantMessage: "cluster-scoped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(argoCaller)

			rec := h.serve(t, newEventRequest(t, http.MethodPost, tt.path, unreadBody{t: t}))

			assert.Equal(t, http.StatusForbidden, rec.Code)
			body := decodeError(t, rec)
			assert.Equal(t, model.CodePermissionDenied, body.Code)
			assert.Contains(t, body.Message, tt.wantMessage)
			assert.Contains(t, body.Message, argoCaller.Subject)
		})
	}
}

func TestEventNotFound(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		path        string
		wantMessage string // substring of the error message
	}{
		{name: "too many segments", method: http.MethodPost, path: "/api/v1/events/argo/github/extra", wantMessage: `"/api/v1/events/argo/github/extra"`},
		{name: "slash after discriminator", method: http.MethodPost, path: "/api/v1/events/argo/github/", wantMessage: `"/api/v1/events/argo/github/"`},
		{name: "events without slash", method: http.MethodPost, path: "/api/v1/events", wantMessage: `"/api/v1/events"`},
		{name: "unknown route", method: http.MethodPost, path: "/api/v2/events/argo", wantMessage: `"/api/v2/events/argo"`},
		{name: "root", method: http.MethodGet, path: "/", wantMessage: `GET "/"`},
		{name: "post healthz", method: http.MethodPost, path: "/healthz", wantMessage: `POST "/healthz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)

			rec := h.serve(t, newEventRequest(t, tt.method, tt.path, unreadBody{t: t}))

			assert.Equal(t, http.StatusNotFound, rec.Code)
			body := decodeError(t, rec)
			assert.Equal(t, model.CodeNotFound, body.Code)
			assert.Contains(t, body.Message, tt.wantMessage)
		})
	}
}

func TestEventMethodNotAllowed(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
	}{
		{name: "get", method: http.MethodGet, path: "/api/v1/events/argo"},
		{name: "put", method: http.MethodPut, path: "/api/v1/events/argo/github"},
		{name: "delete cluster", method: http.MethodDelete, path: "/api/v1/events/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)

			rec := h.serve(t, newEventRequest(t, tt.method, tt.path, unreadBody{t: t}))

			assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
			assert.Equal(t, http.MethodPost, rec.Header().Get("Allow"))
			body := decodeError(t, rec)
			assert.Equal(t, model.CodeUnimplemented, body.Code)
			assert.Contains(t, body.Message, tt.method)
		})
	}
}

func TestEventBodyLimit(t *testing.T) {
	const limit = 1024

	// maxOverread is how far past the limit the handler may read:
	// http.MaxBytesReader reads one byte more to tell a body of exactly the
	// limit from a larger one.
	const maxOverread = 1

	tests := []struct {
		name       string
		size       int // bytes in the body, a JSON string
		wantStatus int
	}{
		{name: "at limit", size: limit, wantStatus: http.StatusOK},
		{name: "one over", size: limit + 1, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "far over", size: 1 << 20, wantStatus: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *server.Config) { cfg.MaxBodyBytes = limit })
			h.expectCaller(argoCaller)
			if tt.wantStatus == http.StatusOK {
				h.expectEnqueue()
			}
			body := &countingReader{r: strings.NewReader(`"` + strings.Repeat("a", tt.size-2) + `"`)}

			rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", body))

			require.Equal(t, tt.wantStatus, rec.Code, "body: %s", rec.Body)
			assert.LessOrEqual(t, body.n, int64(limit+maxOverread), "bytes read from the body")
			if tt.wantStatus == http.StatusOK {
				return
			}
			errBody := decodeError(t, rec)
			assert.Equal(t, model.CodeResourceExhausted, errBody.Code)
			assert.Contains(t, errBody.Message, "1024 bytes")
		})
	}
}

func TestEventQueueError(t *testing.T) {
	errFull := errors.New("pipeline full")

	tests := []struct {
		name           string
		queueErr       error
		wantStatus     int
		wantCode       model.Code
		wantMessage    string
		wantRetryAfter string
	}{
		{
			name:           "full",
			queueErr:       &model.Error{Code: model.CodeUnavailable, Message: "event pipeline is full with 64 events; retry later", Err: errFull},
			wantStatus:     http.StatusServiceUnavailable,
			wantCode:       model.CodeUnavailable,
			wantMessage:    "event pipeline is full with 64 events; retry later",
			wantRetryAfter: "1",
		},
		{
			name:           "shutting down",
			queueErr:       &model.Error{Code: model.CodeUnavailable, Message: "server is shutting down"},
			wantStatus:     http.StatusServiceUnavailable,
			wantCode:       model.CodeUnavailable,
			wantMessage:    "server is shutting down",
			wantRetryAfter: "1",
		},
		{
			name:        "internal",
			queueErr:    errors.New("queue closed at 10.1.2.3"),
			wantStatus:  http.StatusInternalServerError,
			wantCode:    model.CodeInternal,
			wantMessage: "internal error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.expectCaller(argoCaller)
			h.queue.EXPECT().Enqueue(mock.Anything).Return(tt.queueErr).Once()

			rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))

			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, tt.wantRetryAfter, rec.Header().Get("Retry-After"))
			assert.Empty(t, rec.Header().Get("X-Event-Id"))
			body := decodeError(t, rec)
			assert.Equal(t, tt.wantCode, body.Code)
			assert.Equal(t, tt.wantMessage, body.Message)
		})
	}
}

func TestEventAuthInternalError(t *testing.T) {
	h := newHarness(t)
	cause := errors.New("dial tcp 10.1.2.3:443: connection refused")
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(model.Identity{}, cause).Once()

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t}))

	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	body := decodeError(t, rec)
	assert.Equal(t, model.CodeInternal, body.Code)
	assert.Equal(t, "internal error", body.Message)
}

// TestEventAuthTimeout proves that a request whose authenticator does not
// finish within AdmissionTimeout gets a 503 as soon as the timeout expires. The request runs on another
// goroutine so that a handler that hangs fails the test instead of stalling
// it.
func TestEventAuthTimeout(t *testing.T) {
	const admissionTimeout = 20 * time.Millisecond

	h := newHarness(t, func(cfg *server.Config) { cfg.AdmissionTimeout = admissionTimeout })
	// The authenticator sends the time left on its context. It runs on a
	// goroutine of the handler's, so the value travels by channel.
	deadlines := make(chan time.Duration, 1)
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).RunAndReturn(
		func(ctx context.Context, _ model.Token) (model.Identity, error) {
			var left time.Duration
			if deadline, ok := ctx.Deadline(); ok {
				left = time.Until(deadline)
			}
			deadlines <- left
			<-ctx.Done()
			return model.Identity{}, ctx.Err()
		}).Once()

	// Canceling ctx releases the authenticator if the handler set no deadline.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t}).WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.server.ServeHTTP(rec, req)
	}()

	// The bound is half the default timeout, so that a handler that ignores
	// Config.AdmissionTimeout fails here.
	select {
	case <-done:
	case <-time.After(server.DefaultAdmissionTimeout / 2):
		cancel()
		<-done
		t.Fatalf("no response within %s with an admission timeout of %s", server.DefaultAdmissionTimeout/2, admissionTimeout)
	}

	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	var authDeadline time.Duration
	select {
	case authDeadline = <-deadlines:
	case <-time.After(5 * time.Second):
		t.Fatal("authenticator was not called")
	}
	assert.Positive(t, authDeadline, "authenticator context has no deadline")
	assert.LessOrEqual(t, authDeadline, admissionTimeout)
	body := decodeError(t, rec)
	assert.Equal(t, model.CodeUnavailable, body.Code)
	assert.Contains(t, body.Message, "20ms")
}

// TestEventLogs checks that the debug log of a request names the event but
// contains neither the token nor anything from the payload or headers.
func TestEventLogs(t *testing.T) {
	var logs bytes.Buffer
	h := newHarness(t, func(cfg *server.Config) { cfg.Logger = newTestLogger(t, io.MultiWriter(t.Output(), &logs)) })
	h.expectCaller(argoCaller)
	h.expectEnqueue()
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo/github", strings.NewReader(`{"email":"person@example.com"}`))
	req.Header.Set("Cookie", "session=cookie-secret")
	req.Header.Set("X-Hub-Signature-256", "sha256=signature-value")

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	out := logs.String()
	assert.Contains(t, out, "event accepted")
	assert.Contains(t, out, testEventID)
	assert.NotContains(t, out, testToken)
	assert.NotContains(t, out, "cookie-secret")
	assert.NotContains(t, out, "signature-value")
	assert.NotContains(t, out, "person@example.com")
}

func TestListWorkflows(t *testing.T) {
	items := []map[string]any{
		{"metadata": map[string]any{"name": "build-x7k2p", "namespace": "argo"}},
		{"metadata": map[string]any{"name": "build-q9z4m", "namespace": "argo"}},
	}

	tests := []struct {
		name        string
		path        string
		noToken     bool
		items       []map[string]any // what the lister returns
		listErr     error            // the lister's error
		wantStatus  int
		wantItems   string // the JSON of "items" when wantStatus is 200
		wantCode    model.Code
		wantMessage string // substring of the error message
	}{
		{name: "items", path: "/api/v1/workflows/argo", items: items, wantStatus: http.StatusOK, wantItems: `[
			{"metadata":{"name":"build-x7k2p","namespace":"argo"}},
			{"metadata":{"name":"build-q9z4m","namespace":"argo"}}]`},
		{name: "none", path: "/api/v1/workflows/argo", wantStatus: http.StatusOK, wantItems: `[]`},
		{name: "no token", path: "/api/v1/workflows/argo", noToken: true, wantStatus: http.StatusUnauthorized, wantCode: model.CodeUnauthenticated, wantMessage: "missing Authorization header"},
		{name: "invalid namespace", path: "/api/v1/workflows/Bad_NS", noToken: true, wantStatus: http.StatusBadRequest, wantCode: model.CodeInvalid, wantMessage: `namespace "Bad_NS"`},
		{name: "other namespace", path: "/api/v1/workflows/other", wantStatus: http.StatusForbidden, wantCode: model.CodePermissionDenied, wantMessage: `namespace "other"`},
		{name: "lister error", path: "/api/v1/workflows/argo", listErr: errors.New("list workflows: apiserver 10.1.2.3 down"), wantStatus: http.StatusInternalServerError, wantCode: model.CodeInternal, wantMessage: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			wantLister := tt.wantStatus == http.StatusOK || tt.listErr != nil
			if !tt.noToken {
				h.expectCaller(argoCaller)
			}
			if wantLister {
				h.workflows.EXPECT().ListWorkflowObjects(mock.Anything, "argo").Return(tt.items, tt.listErr).Once()
			}
			req := newEventRequest(t, http.MethodGet, tt.path, nil)
			if tt.noToken {
				req.Header.Del("Authorization")
			}

			rec := h.serve(t, req)

			require.Equal(t, tt.wantStatus, rec.Code, "body: %s", rec.Body)
			if tt.wantStatus != http.StatusOK {
				body := decodeError(t, rec)
				assert.Equal(t, tt.wantCode, body.Code)
				assert.Contains(t, body.Message, tt.wantMessage)
				return
			}
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			var list map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list), "body: %s", rec.Body)
			assert.Len(t, list, 4, "fields of %s", rec.Body)
			assert.JSONEq(t, `"argoproj.io/v1alpha1"`, string(list["apiVersion"]))
			assert.JSONEq(t, `"WorkflowList"`, string(list["kind"]))
			assert.JSONEq(t, `{}`, string(list["metadata"]))
			assert.JSONEq(t, tt.wantItems, string(list["items"]))
		})
	}
}

func TestListWorkflowsDisabled(t *testing.T) {
	h := newHarness(t, func(cfg *server.Config) { cfg.Workflows = nil })

	rec := h.serve(t, newEventRequest(t, http.MethodGet, "/api/v1/workflows/argo", nil))

	assert.Equal(t, http.StatusNotFound, rec.Code)
	body := decodeError(t, rec)
	assert.Equal(t, model.CodeNotFound, body.Code)
}

func TestHealthz(t *testing.T) {
	h := newHarness(t, func(cfg *server.Config) { cfg.Ready = func() bool { return false } })

	rec := h.serve(t, httptest.NewRequest(http.MethodGet, "/healthz", nil))

	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		ready      bool
		wantStatus int
		wantBody   string
	}{
		{name: "ready", ready: true, wantStatus: http.StatusOK, wantBody: `{"status":"ok"}`},
		{name: "not ready", ready: false, wantStatus: http.StatusServiceUnavailable, wantBody: `{"status":"not ready: template caches are not synced yet, or the server is shutting down"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *server.Config) { cfg.Ready = func() bool { return tt.ready } })

			rec := h.serve(t, httptest.NewRequest(http.MethodGet, "/readyz", nil))

			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.JSONEq(t, tt.wantBody, rec.Body.String())
		})
	}
}

func TestEventRejectionClosesConnection(t *testing.T) {
	h := newHarness(t)
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t})
	req.Header.Del("Authorization")

	rec := h.serve(t, req)

	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, "close", rec.Header().Get("Connection"), "a rejected sender must not keep the connection with an unread body")
}

func TestEventTwoAuthorizationHeaders(t *testing.T) {
	h := newHarness(t)
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t})
	req.Header.Add("Authorization", "Bearer other-token")

	rec := h.serve(t, req)

	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Contains(t, decodeError(t, rec).Message, "more than one Authorization header")
}

func TestEventLongNamespaceClipped(t *testing.T) {
	h := newHarness(t)
	namespace := strings.Repeat("a", 100000)

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/"+namespace, unreadBody{t: t}))

	require.Equal(t, http.StatusBadRequest, rec.Code)
	body := decodeError(t, rec)
	assert.Less(t, len(body.Message), 1000, "message repeats the whole namespace")
	assert.Contains(t, body.Message, "(100000 bytes)")
}

func TestEventEscapedPrefixNotFound(t *testing.T) {
	h := newHarness(t)

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/%65vents/argo", unreadBody{t: t}))

	require.Equal(t, http.StatusNotFound, rec.Code)
	assert.Contains(t, decodeError(t, rec).Message, "no route")
}

func TestListWorkflowsWrongMethod(t *testing.T) {
	h := newHarness(t)

	rec := h.serve(t, newEventRequest(t, http.MethodPut, "/api/v1/workflows/argo", strings.NewReader(`{}`)))

	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, http.MethodGet, rec.Header().Get("Allow"))
	assert.Equal(t, model.CodeUnimplemented, decodeError(t, rec).Code)
}

// memoryAccess returns decisions from memory for the tokens and namespaces
// in its maps, and counts the calls that would block.
type memoryAccess struct {
	identities map[model.Token]model.Identity
	namespaces map[string]bool
	calls      int
}

func (m *memoryAccess) Authenticate(context.Context, model.Token) (model.Identity, error) {
	m.calls++
	return model.Identity{Subject: "reviewed"}, nil
}

func (m *memoryAccess) AuthenticateFromMemory(token model.Token) (model.Identity, bool, error) {
	identity, found := m.identities[token]
	return identity, found, nil
}

func (m *memoryAccess) MayCreateWorkflows(context.Context, model.Identity, string) (bool, error) {
	m.calls++
	return true, nil
}

func (m *memoryAccess) MayCreateWorkflowsFromMemory(_ model.Identity, namespace string) (bool, bool) {
	allowed, found := m.namespaces[namespace]
	return allowed, found
}

func TestAdmissionUsesMemoryFirst(t *testing.T) {
	access := &memoryAccess{
		identities: map[model.Token]model.Identity{testToken: {Subject: "cached"}},
		namespaces: map[string]bool{"argo": true, "denied": false},
	}
	h := newHarness(t, func(cfg *server.Config) {
		cfg.Authenticator = access
		cfg.Authorizer = access
	})
	var subjects []string
	h.queue.EXPECT().Enqueue(mock.Anything).RunAndReturn(func(ev model.Event) error {
		subjects = append(subjects, ev.Caller.Subject)
		return nil
	})

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, []string{"cached"}, subjects)
	assert.Zero(t, access.calls, "both answers came from memory")

	rec = h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/denied", strings.NewReader(`{}`)))
	assert.Equal(t, http.StatusForbidden, rec.Code, "a cached denial is final")
	assert.Zero(t, access.calls)

	rec = h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/other", strings.NewReader(`{}`)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 1, access.calls, "a namespace not in memory is reviewed")

	other := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`))
	other.Header.Set("Authorization", "Bearer another-token")
	rec = h.serve(t, other)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 2, access.calls, "a token not in memory is reviewed")
	assert.Equal(t, []string{"cached", "cached", "reviewed"}, subjects)
}
