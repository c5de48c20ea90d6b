package sim_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/sim"
)

// waitTimeout bounds every wait for another goroutine. It only matters when
// a test is about to fail.
const waitTimeout = 10 * time.Second

// recordTime is the receive time of every recorded request.
var recordTime = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// recordedApp is the embedded-mode server behind a Recorder that writes to
// a file.
type recordedApp struct {
	server   *httptest.Server
	recorder *sim.Recorder
	path     string
}

// startRecordedApp runs the embedded-mode server on the built-in fixtures
// behind a Recorder, on a loopback httptest server. Event IDs are event-1,
// event-2 and so on. maxBodyBytes, when not zero, is the body limit of both.
func startRecordedApp(t *testing.T, maxBodyBytes int64) *recordedApp {
	t.Helper()

	seed, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	var sequence atomic.Int64
	running, err := app.NewEmbedded(app.Config{
		MaxBodyBytes: maxBodyBytes,
		Logger:       logger,
		NewEventID:   func() string { return fmt.Sprintf("event-%d", sequence.Add(1)) },
	}, seed)
	require.NoError(t, err)
	syncCtx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	require.True(t, running.Start(syncCtx), "template caches did not sync")
	t.Cleanup(running.Stop)

	path := filepath.Join(t.TempDir(), "record.jsonl")
	output, err := sim.OpenRotatingFile(path, 100, 5)
	require.NoError(t, err)
	recorder, err := sim.NewRecorder(sim.RecorderConfig{
		Output:       output,
		MaxBodyBytes: maxBodyBytes,
		Logger:       logger,
		Now:          func() time.Time { return recordTime },
	})
	require.NoError(t, err)
	t.Cleanup(func() { recorder.Close() })

	srv := httptest.NewServer(recorder.Wrap(running.Handler))
	t.Cleanup(srv.Close)
	return &recordedApp{server: srv, recorder: recorder, path: path}
}

// send sends a request with the headers and body, and returns the status
// and the X-Event-Id response header.
func (a *recordedApp) send(t *testing.T, method, target string, headers map[string]string, body []byte) (int, string) {
	t.Helper()

	req, err := http.NewRequest(method, a.server.URL+target, bytes.NewReader(body))
	require.NoError(t, err)
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	resp, err := a.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("X-Event-Id")
}

// stop stops the server, so every handler has returned, closes the
// recorder and returns the raw file and the requests in it.
func (a *recordedApp) stop(t *testing.T) (string, []sim.Request) {
	t.Helper()

	a.server.Close()
	require.NoError(t, a.recorder.Close())
	raw, err := os.ReadFile(a.path)
	require.NoError(t, err)
	requests, err := sim.ReadStream(bytes.NewReader(raw))
	require.NoError(t, err)
	return string(raw), requests
}

func TestRecorderBearerTokenEvent(t *testing.T) {
	a := startRecordedApp(t, 0)
	body := []byte(`{"message":"hello events"}`)

	status, eventID := a.send(t, http.MethodPost, "/api/v1/events/argo?access_token=query-secret",
		map[string]string{"Authorization": "Bearer admin-token", "X-Argo-E2E": "true"}, body)
	raw, requests := a.stop(t)

	require.Equal(t, http.StatusOK, status)
	require.Len(t, requests, 1)
	got := requests[0]
	assert.True(t, recordTime.Equal(got.Time), "time %s", got.Time)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "/api/v1/events/argo?access_token="+sim.Redacted, got.Path)
	assert.Equal(t, []string{sim.Redacted}, got.Headers["Authorization"])
	assert.Equal(t, []string{"true"}, got.Headers["X-Argo-E2e"])
	assert.Equal(t, body, got.Body)
	assert.False(t, got.BodyIncomplete)
	assert.Equal(t, "admin", got.Subject)
	assert.Equal(t, http.StatusOK, got.Status)
	assert.Equal(t, "event-1", eventID)
	assert.Equal(t, "event-1", got.EventID)
	assert.NotContains(t, raw, "admin-token")
	assert.NotContains(t, raw, "query-secret")
}

// signGitHub returns the X-Hub-Signature-256 value of body for secret.
func signGitHub(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestRecorderSignedGitHubDelivery(t *testing.T) {
	a := startRecordedApp(t, 0)
	body, err := os.ReadFile(filepath.Join("..", "fixtures", "webhooks", "github", "push.json"))
	require.NoError(t, err)
	signature := signGitHub("github-webhook-secret", body)
	const delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

	status, eventID := a.send(t, http.MethodPost, "/api/v1/events/argo", map[string]string{
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   delivery,
		"X-Hub-Signature-256": signature,
		"Content-Type":        "application/json",
	}, body)
	raw, requests := a.stop(t)

	require.Equal(t, http.StatusOK, status)
	require.Len(t, requests, 1)
	got := requests[0]
	assert.Equal(t, "system:serviceaccount:argo:github", got.Subject)
	assert.Equal(t, []string{sim.Redacted}, got.Headers["X-Hub-Signature-256"])
	assert.Equal(t, []string{delivery}, got.Headers["X-Github-Delivery"], "replay needs the delivery ID")
	assert.Equal(t, body, got.Body, "the body is kept byte for byte")
	assert.False(t, got.BodyIncomplete)
	assert.Equal(t, http.StatusOK, got.Status)
	assert.Equal(t, delivery, eventID)
	assert.Equal(t, delivery, got.EventID)
	assert.NotContains(t, raw, strings.TrimPrefix(signature, "sha256="))
}

func TestRecorderUnauthenticated(t *testing.T) {
	a := startRecordedApp(t, 0)
	body := []byte(`{"message":"hello events"}`)

	unsignedStatus, _ := a.send(t, http.MethodPost, "/api/v1/events/argo", nil, body)
	unknownStatus, _ := a.send(t, http.MethodPost, "/api/v1/events/argo", map[string]string{"Authorization": "Bearer wrong-token"}, body)
	raw, requests := a.stop(t)

	require.Equal(t, http.StatusUnauthorized, unsignedStatus)
	require.Equal(t, http.StatusUnauthorized, unknownStatus)
	require.Len(t, requests, 2)
	for i, got := range requests {
		assert.Equal(t, http.StatusUnauthorized, got.Status, "request %d", i)
		assert.Empty(t, got.Subject, "request %d", i)
		assert.Empty(t, got.EventID, "request %d", i)
		assert.True(t, got.BodyIncomplete, "request %d: the server rejects before reading the body", i)
		assert.Empty(t, got.Body, "request %d", i)
	}
	assert.Equal(t, []string{sim.Redacted}, requests[1].Headers["Authorization"])
	assert.NotContains(t, raw, "wrong-token")
}

func TestRecorderBodyOverLimit(t *testing.T) {
	const limit = 1024
	a := startRecordedApp(t, limit)
	body := []byte(`{"message":"` + strings.Repeat("x", 4*limit) + `"}`)

	status, _ := a.send(t, http.MethodPost, "/api/v1/events/argo", map[string]string{"Authorization": "Bearer admin-token"}, body)
	_, requests := a.stop(t)

	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Len(t, requests, 1)
	got := requests[0]
	assert.Equal(t, http.StatusRequestEntityTooLarge, got.Status)
	assert.Equal(t, "admin", got.Subject)
	assert.True(t, got.BodyIncomplete)
	assert.Equal(t, body[:limit], got.Body, "the copy stops at the body limit")
}

// TestRecorderBodyPastLimitAtEOF sends a body one byte over the limit whose
// last bytes arrive together with io.EOF, as net/http's body reader returns
// them, so the copy has seen the end and still misses a byte.
func TestRecorderBodyPastLimitAtEOF(t *testing.T) {
	const limit = 8
	output := &memoryOutput{}
	recorder, err := sim.NewRecorder(sim.RecorderConfig{Output: output, MaxBodyBytes: limit})
	require.NoError(t, err)
	handler := recorder.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		assert.Error(t, err, "the body is over the limit")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}))
	body := "123456789"

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/e", iotest.DataErrReader(strings.NewReader(body))))
	require.NoError(t, recorder.Close())

	requests, err := sim.ReadStream(strings.NewReader(output.String()))
	require.NoError(t, err)
	require.Len(t, requests, 1)
	assert.Equal(t, body[:limit], string(requests[0].Body))
	assert.True(t, requests[0].BodyIncomplete)
	assert.Equal(t, http.StatusRequestEntityTooLarge, requests[0].Status)
}

func TestRecorderOtherRoutes(t *testing.T) {
	a := startRecordedApp(t, 0)

	healthStatus, _ := a.send(t, http.MethodGet, "/healthz", nil, nil)
	listStatus, _ := a.send(t, http.MethodGet, "/api/v1/workflows/argo", map[string]string{"Authorization": "Bearer admin-token"}, nil)
	_, requests := a.stop(t)

	require.Equal(t, http.StatusOK, healthStatus)
	require.Equal(t, http.StatusOK, listStatus)
	require.Len(t, requests, 2)
	assert.Equal(t, "/healthz", requests[0].Path)
	assert.Equal(t, http.MethodGet, requests[0].Method)
	assert.Empty(t, requests[0].Subject)
	assert.False(t, requests[0].BodyIncomplete, "a request without a body is complete")
	assert.Equal(t, "/api/v1/workflows/argo", requests[1].Path)
	assert.Equal(t, "admin", requests[1].Subject)
}

// blockingWriter blocks every Write until release is closed, and sends on
// entered when a Write starts.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}

	mu  sync.Mutex
	buf bytes.Buffer
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *blockingWriter) Close() error { return nil }

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// memoryOutput keeps a recorded stream in memory.
type memoryOutput struct{ syncBuffer }

func (*memoryOutput) Close() error { return nil }

// readBodyHandler reads the whole body and responds 200.
var readBodyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
})

// serveWithin runs one request through handler and fails the test if it
// has not returned within waitTimeout, which would mean it blocked.
func serveWithin(t *testing.T, handler http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()

	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{}`)))
	}()
	select {
	case <-done:
		return rec
	case <-time.After(waitTimeout):
		t.Fatalf("request to %s blocked on the recorder", target)
		return nil
	}
}

// scrape returns the text of m's /metrics.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func TestRecorderDropsWhenBufferFull(t *testing.T) {
	output := newBlockingWriter()
	logs := &syncBuffer{}
	m := metrics.New(metrics.Config{})
	recorder, err := sim.NewRecorder(sim.RecorderConfig{
		Output:     output,
		BufferSize: 1,
		Logger:     slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil)),
		Metrics:    m,
		Now:        func() time.Time { return recordTime },
	})
	require.NoError(t, err)
	handler := recorder.Wrap(readBodyHandler)

	// The first request blocks the writer goroutine, the second fills the
	// buffer of one, and the others find it full.
	assert.Equal(t, http.StatusOK, serveWithin(t, handler, "/requests/1").Code)
	select {
	case <-output.entered:
	case <-time.After(waitTimeout):
		t.Fatal("the writer goroutine did not start writing the first request")
	}
	for i := 2; i <= 4; i++ {
		assert.Equal(t, http.StatusOK, serveWithin(t, handler, fmt.Sprintf("/requests/%d", i)).Code)
	}

	assert.Equal(t, uint64(2), recorder.Dropped())
	assert.Contains(t, scrape(t, m), "wfevents_record_dropped_total 2")
	assert.Equal(t, 1, strings.Count(logs.String(), "request not recorded"), "the second drop within the interval is not logged; logs:\n%s", logs)

	// Unblock the writer: Close writes what was buffered.
	close(output.release)
	closed := make(chan error, 1)
	go func() { closed <- recorder.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return after the writer was released")
	}

	assert.Equal(t, uint64(2), recorder.Written())
	assert.Contains(t, scrape(t, m), "wfevents_record_written_total 2")
	requests, err := sim.ReadStream(strings.NewReader(output.String()))
	require.NoError(t, err)
	require.Len(t, requests, 2)
	assert.Equal(t, "/requests/1", requests[0].Path)
	assert.Equal(t, "/requests/2", requests[1].Path)
}

func TestRecorderDropsAfterClose(t *testing.T) {
	output := newBlockingWriter()
	close(output.release)
	recorder, err := sim.NewRecorder(sim.RecorderConfig{Output: output})
	require.NoError(t, err)
	handler := recorder.Wrap(readBodyHandler)
	require.NoError(t, recorder.Close())

	rec := serveWithin(t, handler, "/late")

	assert.Equal(t, http.StatusOK, rec.Code, "the request is served although it is not recorded")
	assert.Equal(t, uint64(1), recorder.Dropped())
	assert.NoError(t, recorder.Close(), "a second Close returns the first one's result")
}

// failingWriter fails every Write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }
func (failingWriter) Close() error              { return nil }

func TestRecorderWriteErrorCounted(t *testing.T) {
	logs := &syncBuffer{}
	m := metrics.New(metrics.Config{})
	recorder, err := sim.NewRecorder(sim.RecorderConfig{
		Output:  failingWriter{},
		Logger:  slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil)),
		Metrics: m,
	})
	require.NoError(t, err)

	rec := serveWithin(t, recorder.Wrap(readBodyHandler), "/api/v1/events/argo")
	require.NoError(t, recorder.Close())

	assert.Equal(t, http.StatusOK, rec.Code, "the client never sees a write error")
	assert.Equal(t, uint64(1), recorder.WriteErrors())
	assert.Equal(t, uint64(0), recorder.Written())
	assert.Contains(t, scrape(t, m), "wfevents_record_write_errors_total 1")
	assert.Contains(t, logs.String(), "no space left on device")
}

func TestRecorderAppendsToExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	var earlier bytes.Buffer
	require.NoError(t, sim.WriteStream(&earlier, []sim.Request{{Method: http.MethodPost, Path: "/earlier"}}))
	require.NoError(t, os.WriteFile(path, earlier.Bytes(), 0o600))
	output, err := sim.OpenRotatingFile(path, 100, 5)
	require.NoError(t, err)
	recorder, err := sim.NewRecorder(sim.RecorderConfig{Output: output})
	require.NoError(t, err)

	serveWithin(t, recorder.Wrap(readBodyHandler), "/later")
	require.NoError(t, recorder.Close())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	requests, err := sim.ReadStream(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, requests, 2)
	assert.Equal(t, "/earlier", requests[0].Path)
	assert.Equal(t, "/later", requests[1].Path)
}

// TestRecorderRotates writes three lines of about 400 KiB to a file whose
// limit is 1 MiB, the smallest lumberjack allows, so the third line goes to
// a new file.
func TestRecorderRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "record.jsonl")
	output, err := sim.OpenRotatingFile(path, 1, 5)
	require.NoError(t, err)
	recorder, err := sim.NewRecorder(sim.RecorderConfig{Output: output})
	require.NoError(t, err)
	handler := recorder.Wrap(readBodyHandler)
	body := `{"data":"` + strings.Repeat("x", 400<<10) + `"}`

	for i := 1; i <= 3; i++ {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, fmt.Sprintf("/requests/%d", i), strings.NewReader(body)))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	require.NoError(t, recorder.Close())

	require.Equal(t, uint64(3), recorder.Written())
	backups, err := filepath.Glob(filepath.Join(dir, "record-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, backups, 1, "one rotation")
	backup := readStreamFile(t, backups[0])
	current := readStreamFile(t, path)
	require.Len(t, backup, 2)
	require.Len(t, current, 1)
	assert.Equal(t, "/requests/1", backup[0].Path)
	assert.Equal(t, "/requests/2", backup[1].Path)
	assert.Equal(t, "/requests/3", current[0].Path)
	assert.Equal(t, body, string(current[0].Body))
}

func readStreamFile(t *testing.T, path string) []sim.Request {
	t.Helper()
	file, err := os.Open(path)
	require.NoError(t, err)
	defer file.Close()
	requests, err := sim.ReadStream(file)
	require.NoError(t, err)
	return requests
}

func TestOpenRotatingFileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name       string
		path       string
		maxSize    int
		maxBackups int
		wantError  string
	}{
		{name: "zero size", path: filepath.Join(dir, "a.jsonl"), maxSize: 0, maxBackups: 5, wantError: "invalid maximum size 0 MiB"},
		{name: "negative backups", path: filepath.Join(dir, "a.jsonl"), maxSize: 1, maxBackups: -1, wantError: "invalid maximum backups -1"},
		{name: "missing directory", path: filepath.Join(dir, "missing", "a.jsonl"), maxSize: 1, maxBackups: 5, wantError: "open recording"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.OpenRotatingFile(tc.path, tc.maxSize, tc.maxBackups)

			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestNewRecorderValidates(t *testing.T) {
	_, err := sim.NewRecorder(sim.RecorderConfig{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Output is required")

	_, err = sim.NewRecorder(sim.RecorderConfig{Output: failingWriter{}, BufferSize: -1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "BufferSize must not be negative")
}

func TestOpenRotatingFileEndsPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stream.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"method":"POST","path":"/a"}`+"\n"+`{"method":"PO`), 0o600))

	out, err := sim.OpenRotatingFile(path, 1, 0)
	require.NoError(t, err)
	require.NoError(t, sim.NewStreamWriter(out).Write(sim.Request{Method: "POST", Path: "/b"}))
	require.NoError(t, out.Close())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, `{"method":"PO`, lines[1], "the partial line stays as it was, on its own")
	assert.Contains(t, lines[2], `"path":"/b"`)
}
