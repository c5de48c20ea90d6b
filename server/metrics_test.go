package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

func TestMetricsRejectReasons(t *testing.T) {
	m := metrics.New(metrics.Config{})
	h := newHarness(t, func(cfg *server.Config) { cfg.Metrics = m })
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(argoCaller, nil).Times(3)
	h.queue.EXPECT().Enqueue(mock.Anything).Return(&model.Error{Code: model.CodeUnavailable, Message: "event pipeline is full", Err: workers.ErrFull}).Once()
	h.queue.EXPECT().Enqueue(mock.Anything).Return(workers.ErrShuttingDown).Once()

	h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))
	h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))
	h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/other", unreadBody{t: t}))
	h.serve(t, newEventRequest(t, http.MethodGet, "/api/v1/events/argo", unreadBody{t: t}))
	over := strings.Repeat(" ", server.DefaultMaxBodyBytes+1)
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(argoCaller, nil).Once()
	h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(over)))

	rec := httptest.NewRecorder()
	h.server.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	for _, line := range []string{
		`wfevents_events_received_total 5`,
		`wfevents_events_rejected_total{reason="queue_full"} 1`,
		`wfevents_events_rejected_total{reason="shutting_down"} 1`,
		`wfevents_events_rejected_total{reason="auth"} 1`,
		`wfevents_events_rejected_total{reason="bad_request"} 1`,
		`wfevents_events_rejected_total{reason="too_large"} 1`,
	} {
		assert.Contains(t, string(body), line)
	}
	assert.NotContains(t, string(body), "wfevents_events_accepted_total{", "nothing was accepted")
}

// fullQueue is a queue that reports no room, and fails the test if an event
// reaches it.
type fullQueue struct{ t *testing.T }

func (q fullQueue) Enqueue(model.Event) error {
	q.t.Error("Enqueue called although CheckRoom reported the pipeline full")
	return nil
}

func (fullQueue) CheckRoom() error {
	return &model.Error{Code: model.CodeUnavailable, Message: "event pipeline is full", Err: workers.ErrFull}
}

func TestFullPipelineRejectsBeforeReading(t *testing.T) {
	m := metrics.New(metrics.Config{})
	h := newHarness(t, func(cfg *server.Config) {
		cfg.Queue = fullQueue{t: t}
		cfg.Metrics = m
	})

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", unreadBody{t: t}))

	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Empty(t, rec.Header().Get("Connection"), "a retrying sender keeps its connection")
	assert.Equal(t, model.CodeUnavailable, decodeError(t, rec).Code)
	metricsRec := httptest.NewRecorder()
	h.server.ServeHTTP(metricsRec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Contains(t, metricsRec.Body.String(), `wfevents_events_rejected_total{reason="queue_full"} 1`)
}
