package loadtest_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/loadtest"
)

// testLogger routes the in-process server's logs to the test output.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runLoad runs opts and fails the test when the run could not take place.
func runLoad(t testing.TB, opts loadtest.Options) *loadtest.Report {
	t.Helper()
	opts.Server.Logger = testLogger(t)
	report, err := loadtest.Run(t.Context(), opts)
	require.NoError(t, err)
	require.NotNil(t, report)
	return report
}

// assertChecksPassed fails for each check of report that did not pass.
func assertChecksPassed(t testing.TB, report *loadtest.Report) {
	t.Helper()
	require.NotEmpty(t, report.Checks, "the scenario made no checks")
	for _, check := range report.Checks {
		assert.True(t, check.Passed, "check %s: %s", check.Name, check.Detail)
	}
}

func TestLimitAcceptsExactlyPipelineSize(t *testing.T) {
	report := runLoad(t, loadtest.Options{
		Scenario:    loadtest.ScenarioLimit,
		Server:      loadtest.ServerConfig{PipelineSize: 8, WorkerCount: 2},
		MaxRequests: 50,
		Rate:        1000,
	})

	assertChecksPassed(t, report)
	limit := report.Limit
	require.NotNil(t, limit)
	assert.Equal(t, 8, limit.PipelineSize)
	assert.Equal(t, 50, limit.Sent)
	assert.Equal(t, 8, limit.Accepted)
	assert.Equal(t, 42, limit.Rejected)
	assert.Equal(t, 8, limit.HeldDepth)
	assert.Equal(t, 8, limit.Processed, "accepted events that created exactly one Workflow")
	assert.Empty(t, limit.Missing, "accepted events that created no Workflow")
	assert.Empty(t, limit.Duplicated, "accepted events that created more than one Workflow")
	assert.Zero(t, limit.Unexpected, "Workflows of events that were not accepted")

	require.Len(t, report.Runs, 1)
	assert.Zero(t, report.Runs[0].NoRetryAfter, "503 responses without Retry-After")
	assert.Equal(t, 8, report.Runs[0].Count(http.StatusOK))
	assert.Equal(t, 42, report.Runs[0].Count(http.StatusServiceUnavailable))
}

func TestLimitSkippedAgainstURL(t *testing.T) {
	// Port 9 is never dialled: the scenario is skipped before any request.
	report := runLoad(t, loadtest.Options{Scenario: loadtest.ScenarioLimit, URL: "http://127.0.0.1:9"})

	assert.Contains(t, report.Skipped, "in-process server")
	assert.Empty(t, report.Runs)
	assert.Empty(t, report.Checks)
	assert.Equal(t, "http://127.0.0.1:9/api/v1/events/argo", report.URL)
}

func TestRateAgainstURL(t *testing.T) {
	server, err := loadtest.StartServer(t.Context(), loadtest.ServerConfig{Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, server.Close()) })

	report := runLoad(t, loadtest.Options{
		Scenario:    loadtest.ScenarioRate,
		URL:         server.URL,
		MaxRequests: 20,
		Rate:        1000,
	})

	assert.Nil(t, report.Server, "server settings of a server that load did not start")
	require.Len(t, report.Runs, 1)
	run := report.Runs[0]
	assert.Equal(t, uint64(20), run.Requests)
	assert.Equal(t, 20, run.Count(http.StatusOK), "the default pipeline holds 20 events")
	assert.Nil(t, run.Memory, "memory of another process")
	assert.Empty(t, run.Errors)
}

func TestRateUnpacedAgainstNoop(t *testing.T) {
	report := runLoad(t, loadtest.Options{
		Scenario:    loadtest.ScenarioRate,
		Server:      loadtest.ServerConfig{Handler: loadtest.HandlerNoop},
		Unpaced:     true,
		MaxWorkers:  2,
		MaxRequests: 30,
	})

	require.Len(t, report.Runs, 1)
	run := report.Runs[0]
	assert.Equal(t, 0, run.TargetRate)
	assert.Equal(t, uint64(30), run.Requests)
	assert.Equal(t, 30, run.Count(http.StatusOK))
	require.NotNil(t, run.Memory, "an in-process run samples memory")
	assert.NotEmpty(t, run.Memory.Samples)
}

func TestCapacityStopsAtFirst503s(t *testing.T) {
	// One slot, and a worker that holds it for longer than the step, so
	// every event after the first gets 503.
	report := runLoad(t, loadtest.Options{
		Scenario:     loadtest.ScenarioCapacity,
		Server:       loadtest.ServerConfig{PipelineSize: 1, WorkerCount: 1, APILatency: time.Second},
		StartRate:    50,
		StepDuration: 100 * time.Millisecond,
		RefineSteps:  -1,
	})

	capacity := report.Capacity
	require.NotNil(t, capacity)
	assert.Zero(t, capacity.SustainedRate)
	assert.Equal(t, 50, capacity.FirstFailedRate)
	assert.Contains(t, capacity.FailReason, "were 503")
	require.Len(t, report.Runs, 1, "steps after the first failed one, with no refine steps")
	require.NotNil(t, report.Runs[0].Step)
	assert.False(t, report.Runs[0].Step.Sustained)
	assert.Equal(t, 1, report.Runs[0].Count(http.StatusOK))
}

func TestCapacityBoundedByDuration(t *testing.T) {
	report := runLoad(t, loadtest.Options{
		Scenario:     loadtest.ScenarioCapacity,
		StartRate:    20,
		StepDuration: 100 * time.Millisecond,
		Duration:     450 * time.Millisecond,
		MaxP99:       time.Second,
	})

	// Whether each step is sustained depends on the machine, so only the
	// consistency of the result is checked.
	capacity := report.Capacity
	require.NotNil(t, capacity)
	require.NotEmpty(t, report.Runs)
	assert.LessOrEqual(t, len(report.Runs), 4, "steps of 100ms within 450ms")
	highest := 0
	for _, run := range report.Runs {
		require.NotNil(t, run.Step, "verdict of the step at %d/s", run.TargetRate)
		if run.Step.Sustained {
			highest = max(highest, run.TargetRate)
		}
	}
	assert.Equal(t, highest, capacity.SustainedRate)
	assert.True(t, capacity.StoppedBy != "" || capacity.FirstFailedRate > 0, "the search ended without a reason")
}

func TestOptionsRejected(t *testing.T) {
	tests := []struct {
		name    string
		opts    loadtest.Options
		wantErr string
	}{
		{
			name:    "unknown scenario",
			opts:    loadtest.Options{Scenario: "soak"},
			wantErr: `invalid scenario "soak"`,
		},
		{
			name:    "unpaced without workers",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioRate, Unpaced: true},
			wantErr: "needs a bound on the requests in flight",
		},
		{
			name:    "limit not above pipeline size",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioLimit, MaxRequests: 8, Server: loadtest.ServerConfig{PipelineSize: 8}},
			wantErr: "send more than the pipeline size 8",
		},
		{
			name:    "limit on noop handler",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioLimit, Server: loadtest.ServerConfig{Handler: loadtest.HandlerNoop}},
			wantErr: `invalid handler "noop"`,
		},
		{
			name:    "limit without kept Workflows",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioLimit, Server: loadtest.ServerConfig{DiscardWorkflows: true}},
			wantErr: "invalid --api-discard-workflows for the limit scenario",
		},
		{
			name:    "URL with path",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioRate, URL: "http://127.0.0.1:2746/api/v1/events/argo"},
			wantErr: "without a path",
		},
		{
			name:    "negative duration",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioRate, Duration: -time.Second},
			wantErr: "invalid duration",
		},
		{
			name:    "rate factor not above 1",
			opts:    loadtest.Options{Scenario: loadtest.ScenarioCapacity, RateFactor: 1},
			wantErr: "invalid rate factor 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report, err := loadtest.Run(t.Context(), tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Nil(t, report)
		})
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	report := runLoad(t, loadtest.Options{
		Scenario:    loadtest.ScenarioLimit,
		Server:      loadtest.ServerConfig{PipelineSize: 2, WorkerCount: 1},
		MaxRequests: 5,
		Rate:        1000,
	})

	var buffer bytes.Buffer
	require.NoError(t, report.WriteJSON(&buffer))
	var decoded loadtest.Report
	require.NoError(t, json.Unmarshal(buffer.Bytes(), &decoded), "report JSON:\n%s", buffer.String())
	assert.Equal(t, report.Limit, decoded.Limit)
	assert.Equal(t, report.Checks, decoded.Checks)
	assert.Equal(t, 2, decoded.Server.PipelineSize)
}

func TestDiscardWorkflowsKeepsNone(t *testing.T) {
	server, err := loadtest.StartServer(t.Context(), loadtest.ServerConfig{Logger: testLogger(t), DiscardWorkflows: true})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, server.Close()) })

	report := runLoad(t, loadtest.Options{
		Scenario:    loadtest.ScenarioRate,
		URL:         server.URL,
		MaxRequests: 20,
		Rate:        1000,
	})
	require.NoError(t, server.WaitIdle(t.Context()))

	require.Len(t, report.Runs, 1)
	assert.Equal(t, 20, report.Runs[0].Count(http.StatusOK))
	counts, err := server.WorkflowsByEvent(t.Context(), "argo")
	require.NoError(t, err)
	assert.Empty(t, counts, "the 20 creates succeeded without keeping a Workflow")
}
