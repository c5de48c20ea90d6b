package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/metrics"
)

func exposition(t testing.TB, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(body)
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics

	assert.NotPanics(t, func() {
		m.EventReceived()
		m.EventAccepted("argo")
		m.EventRejected(metrics.RejectAuth)
		m.EventProcessed("argo", 0.1, 1, 1)
		m.DispatchFailed(metrics.DispatchForbidden)
		m.SignatureFailed("github")
		m.GaugeFunc("x", "x", func() float64 { return 1 })
		m.CounterFunc("y", "y", nil, func() float64 { return 1 })
	})
}

func TestNamespaceLabel(t *testing.T) {
	cases := []struct {
		name   string
		config metrics.Config
		want   string
	}{
		{name: "off by default", config: metrics.Config{}, want: `wfevents_events_accepted_total{namespace=""} 2`},
		{name: "on by flag", config: metrics.Config{NamespaceLabel: true}, want: `wfevents_events_accepted_total{namespace="argo"} 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(tc.config)

			m.EventAccepted("argo")
			m.EventAccepted("team-a")

			assert.Contains(t, exposition(t, m), tc.want)
		})
	}
}

func TestCountersByReason(t *testing.T) {
	m := metrics.New(metrics.Config{})

	m.EventRejected(metrics.RejectQueueFull)
	m.EventRejected(metrics.RejectQueueFull)
	m.DispatchFailed(metrics.DispatchNotFound)
	m.EventProcessed("argo", 0.002, 3, 2)

	out := exposition(t, m)
	for _, line := range []string{
		`wfevents_events_rejected_total{reason="queue_full"} 2`,
		`wfevents_dispatch_errors_total{reason="not_found"} 1`,
		`wfevents_matches_total{namespace=""} 3`,
		`wfevents_workflows_created_total{namespace=""} 2`,
		`wfevents_event_processing_seconds_count 1`,
	} {
		assert.True(t, strings.Contains(out, line), "missing %q", line)
	}
}
