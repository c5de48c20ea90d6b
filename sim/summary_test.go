package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDepthTimelineIntervals(t *testing.T) {
	depth := []DepthPoint{
		{At: 0, Depth: 0},
		{At: time.Second, Depth: 1},
		{At: 2 * time.Second, Depth: 3},
		{At: 2500 * time.Millisecond, Depth: 2},
		{At: 6 * time.Second, Depth: 0},
	}

	samples := depthTimeline(depth, 3)

	assert.Equal(t, []DepthSample{
		{AtSeconds: 0, MaxDepth: 1},
		{AtSeconds: 2, MaxDepth: 3},
		{AtSeconds: 4, MaxDepth: 2},
	}, samples, "an interval without points keeps the depth before it")
}

func TestDepthTimelineSingleInstant(t *testing.T) {
	samples := depthTimeline([]DepthPoint{{At: 0, Depth: 0}, {At: 0, Depth: 1}, {At: 0, Depth: 0}}, 5)

	assert.Equal(t, []DepthSample{{AtSeconds: 0, MaxDepth: 1}}, samples)
}

func TestArrivalsFromReplay(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	requests := []Request{
		{Time: start.Add(time.Second), Path: "/api/v1/events/argo"},
		{Time: start, Path: "/api/v1/events/argo"},
		{Time: start.Add(2 * time.Second), Path: "/api/v1/workflows/argo"},
	}
	report := Report{Events: []EventResult{
		{Status: 200, Queued: true, Workflows: []WorkflowResult{{}, {}}},
		{Status: 401},
		{Status: 200},
	}}

	arrivals, stats, err := Arrivals(requests, report)

	require.NoError(t, err)
	assert.Equal(t, []Arrival{
		{At: time.Second, Admitted: true, Creates: 2},
		{At: 0, Admitted: false, Creates: 0},
	}, arrivals, "times count from the earliest request, and other paths are left out")
	assert.Equal(t, ArrivalStats{OtherPaths: 1, EstimatedCreates: 2}, stats)

	_, _, err = Arrivals(requests, Report{})
	assert.EqualError(t, err, "the replay has 0 results for 3 requests")
}

func TestArrivalsEstimateRecordedRejections(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	requests := []Request{
		{Time: start, Path: "/api/v1/events/argo"},
		{Time: start, Path: "/api/v1/events/argo"},
		{Time: start, Path: "/api/v1/events/argo", Status: 503, BodyIncomplete: true},
		{Time: start, Path: "/api/v1/events/argo", Status: 413, BodyIncomplete: true},
	}
	report := Report{Events: []EventResult{
		{Status: 200, Queued: true, Workflows: []WorkflowResult{{}, {}, {}}},
		{Status: 200, Queued: true},
		{},
		{},
	}}

	arrivals, stats, err := Arrivals(requests, report)

	require.NoError(t, err)
	assert.Equal(t, Arrival{Admitted: true, Creates: 2}, arrivals[2], "a recorded 503 stands for an event with the mean Workflow count, 1.5 rounded up")
	assert.Equal(t, Arrival{Admitted: false}, arrivals[3], "a 413 is not admitted")
	assert.Equal(t, ArrivalStats{Estimated: 1, EstimatedCreates: 2, NotReplayed: 1}, stats)
}

func TestArrivalsNeedTimes(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	report := Report{Events: []EventResult{{}, {}}}

	_, _, err := Arrivals([]Request{{Line: 1, Time: start, Path: "/api/v1/events/a"}, {Line: 2, Path: "/api/v1/events/a"}}, report)
	assert.EqualError(t, err, `line 2 has no "time": a simulation needs the receive time of every request`)

	far := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, err = Arrivals([]Request{{Line: 1, Time: start, Path: "/api/v1/events/a"}, {Line: 2, Time: far, Path: "/api/v1/events/a"}}, report)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: its time 2400-01-01T00:00:00Z is more than 292 years after")
}

func TestWriteSummaryText(t *testing.T) {
	result, err := Simulate([]Arrival{
		{At: 0, Admitted: true, Creates: 1},
		{At: 0, Admitted: true, Creates: 1},
		{At: 0, Admitted: false},
	}, Settings{PipelineSize: 1, Workers: 1, Speed: 1, APILatency: FixedLatency(time.Second), Seed: 1})
	require.NoError(t, err)

	var buf bytes.Buffer
	require.NoError(t, WriteSummary(&buf, Summarize(result, ArrivalStats{OtherPaths: 3}, 2)))

	text := buf.String()
	assert.Contains(t, text, "settings               pipeline size 1, 1 worker, API latency 1s per create, speed 1, seed 1\n")
	assert.Contains(t, text, "accepted               1\n")
	assert.Contains(t, text, "rejected (503)         2\n")
	assert.Contains(t, text, "delay to creation      p50 1s, p90 1s, p99 1s, max 1s\n")
	assert.Contains(t, text, "max depth              1 of 1\n")
	assert.Contains(t, text, "left out               3  (requests to paths other than /api/v1/events/)\n")
	assert.Contains(t, text, "########################################\n", "a full pipeline draws a full bar")
}
