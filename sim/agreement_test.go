package sim

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/fixtures"
)

// readFixtureStream reads a stream of fixtures/streams.
func readFixtureStream(t *testing.T, name string) []Request {
	t.Helper()
	file, err := os.Open("../fixtures/streams/" + name)
	require.NoError(t, err)
	defer file.Close()
	requests, err := ReadStream(file)
	require.NoError(t, err)
	return requests
}

// agreementStream mixes the fixture streams so that the pipeline fills
// part-way. GitHub deliveries come first, with a ping, a non-matching event
// and a 401. A burst then fills the pipeline. Bearer-token and GitLab
// requests, a 400, a 401 and a 403 among them, arrive while it is full.
// Each request arrives 1 ms after the one before.
func agreementStream(t *testing.T) []Request {
	t.Helper()
	var requests []Request
	requests = append(requests, readFixtureStream(t, "github.jsonl")...)
	requests = append(requests, readFixtureStream(t, "burst.jsonl")[:40]...)
	requests = append(requests, readFixtureStream(t, "bearer.jsonl")...)
	requests = append(requests, readFixtureStream(t, "gitlab.jsonl")...)

	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for i := range requests {
		requests[i].Time = start.Add(time.Duration(i) * time.Millisecond)
		requests[i].Line = i + 1
	}
	return requests
}

// TestSimulationAgreesWithPipeline sends a stream to the real handler and
// pipeline while every Workflow create of the fake API server blocks, then
// releases them. The simulation of the same stream, with creates that take
// longer than the stream lasts, must predict the same 503s.
func TestSimulationAgreesWithPipeline(t *testing.T) {
	const size, workers = 16, 2
	requests := agreementStream(t)
	set, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)

	// The prediction: replay one at a time to learn admission and creates,
	// then simulate.
	predictor, err := NewReplayer(t.Context(), ReplayConfig{Fixtures: set})
	require.NoError(t, err)
	report := predictor.ReplayAll(t.Context(), requests)
	predictor.Close()
	arrivals, _, err := Arrivals(requests, report)
	require.NoError(t, err)
	predicted, err := Simulate(arrivals, Settings{
		PipelineSize: size,
		Workers:      workers,
		Speed:        1,
		APILatency:   FixedLatency(time.Hour),
		Seed:         1,
	})
	require.NoError(t, err)

	// The real pipeline, with creates blocked until release is closed.
	live, err := NewReplayer(t.Context(), ReplayConfig{Fixtures: set, PipelineSize: size, WorkerCount: workers})
	require.NoError(t, err)
	t.Cleanup(live.Close)
	release := make(chan struct{})
	live.app.Fake.PrependReactor("create", "workflows", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	statuses := make([]int, len(requests))
	for i, req := range requests {
		httpReq, err := live.prepare(t.Context(), req)
		require.NoError(t, err, "line %d", req.Line)
		live.eventID = req.EventID
		recorder := httptest.NewRecorder()
		live.app.Handler.ServeHTTP(recorder, httpReq)
		statuses[i] = recorder.Code
	}
	rejected := 0
	for _, status := range statuses {
		if status == http.StatusServiceUnavailable {
			rejected++
		}
	}

	t.Logf("simulated: %d accepted, %d rejected, %d not admitted; real: %d rejected", predicted.Accepted, predicted.Rejected, predicted.NotAdmitted, rejected)
	require.Greater(t, predicted.Rejected, 0, "the stream must overflow the pipeline for the comparison to mean anything")
	assert.Greater(t, predicted.NotAdmitted, 0, "the stream must contain requests that fail admission")
	assert.Equal(t, predicted.Rejected, rejected, "503s: simulated %d, live %d", predicted.Rejected, rejected)
	assert.Equal(t, predicted.Accepted, live.app.Pipeline.Depth(), "accepted events hold the pipeline while creates block")
	for i := len(requests) - 5; i < len(requests); i++ {
		assert.Equal(t, http.StatusServiceUnavailable, statuses[i], "line %d arrives while the pipeline is full", requests[i].Line)
	}

	// Once the API server responds again, every accepted event creates its
	// Workflows: the ones the one-at-a-time replay listed for it.
	close(release)
	released = true
	require.NoError(t, live.waitProcessed(t.Context()))

	var want []string
	for i, result := range report.Events {
		if statuses[i] != http.StatusOK {
			continue
		}
		for _, wf := range result.Workflows {
			want = append(want, wf.Namespace+"/"+wf.Name)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)

	var got []string
	for _, action := range live.app.Fake.Actions() {
		if create, ok := action.(k8stesting.CreateAction); ok && action.GetResource().Resource == "workflows" {
			if object, ok := create.GetObject().(interface{ GetName() string }); ok {
				got = append(got, action.GetNamespace()+"/"+object.GetName())
			}
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	assert.Equal(t, want, got)
}
