package sim

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// settings returns valid settings with a fixed latency.
func settings(size, workers int, latency time.Duration) Settings {
	return Settings{PipelineSize: size, Workers: workers, Speed: 1, APILatency: FixedLatency(latency)}
}

// simulate runs Simulate and fails the test on an error.
func simulate(t testing.TB, arrivals []Arrival, s Settings) Result {
	t.Helper()
	result, err := Simulate(arrivals, s)
	require.NoError(t, err)
	return result
}

// burst returns n admitted arrivals at time 0 that create one Workflow each.
func burst(n int) []Arrival {
	arrivals := make([]Arrival, n)
	for i := range arrivals {
		arrivals[i] = Arrival{Admitted: true, Creates: 1}
	}
	return arrivals
}

func TestSimulateBurstFillsPipeline(t *testing.T) {
	r := simulate(t, burst(5), settings(2, 1, time.Second))

	assert.Equal(t, 5, r.Total)
	assert.Equal(t, 5, r.Admitted)
	assert.Equal(t, 0, r.NotAdmitted)
	assert.Equal(t, 2, r.Accepted)
	assert.Equal(t, 3, r.Rejected)
	assert.Equal(t, []EventTiming{
		{Index: 0, Received: 0, Started: 0, Wait: 0, Finished: time.Second},
		{Index: 1, Received: 0, Started: time.Second, Wait: time.Second, Finished: 2 * time.Second},
	}, r.Events)
	assert.Equal(t, []WorkflowTiming{
		{Event: 0, Created: time.Second, Delay: time.Second},
		{Event: 1, Created: 2 * time.Second, Delay: 2 * time.Second},
	}, r.Workflows)
	assert.Equal(t, []DepthPoint{{0, 0}, {0, 1}, {0, 2}, {time.Second, 1}, {2 * time.Second, 0}}, r.Depth)
	assert.Equal(t, 2, r.MaxDepth)
	assert.Equal(t, Percentiles{P50: time.Second, P90: 2 * time.Second, P99: 2 * time.Second, Max: 2 * time.Second}, r.Delay)
	assert.Equal(t, 2*time.Second, r.LastCreated)
}

func TestSimulateFinishBeforeArrival(t *testing.T) {
	// The first event finishes at 1s, so its slot is free for the request
	// received at 1s, but not for the one received a nanosecond earlier.
	arrivals := []Arrival{
		{At: 0, Admitted: true, Creates: 1},
		{At: time.Second - 1, Admitted: true, Creates: 1},
		{At: time.Second, Admitted: true, Creates: 1},
	}
	r := simulate(t, arrivals, settings(1, 1, time.Second))

	assert.Equal(t, 2, r.Accepted)
	assert.Equal(t, 1, r.Rejected)
	require.Len(t, r.Events, 2)
	assert.Equal(t, 2, r.Events[1].Index)
	assert.Equal(t, time.Second, r.Events[1].Started)
	assert.Equal(t, time.Duration(0), r.Events[1].Wait)
	assert.Equal(t, []DepthPoint{{0, 0}, {0, 1}, {time.Second, 0}, {time.Second, 1}, {2 * time.Second, 0}}, r.Depth)
}

func TestSimulateNoCreatesFinishesAtOnce(t *testing.T) {
	arrivals := []Arrival{
		{Admitted: true, Creates: 0},
		{Admitted: true, Creates: 0},
		{Admitted: true, Creates: 1},
		{Admitted: true, Creates: 1},
	}
	r := simulate(t, arrivals, settings(1, 1, time.Second))

	assert.Equal(t, 3, r.Accepted)
	assert.Equal(t, 1, r.Rejected)
	assert.Len(t, r.Workflows, 1)
	assert.Equal(t, []DepthPoint{{0, 0}, {0, 1}, {0, 0}, {0, 1}, {0, 0}, {0, 1}, {time.Second, 0}}, r.Depth)
	assert.Equal(t, 1, r.MaxDepth)
}

func TestSimulateNoCreatesWaitsForWorker(t *testing.T) {
	// The event that creates nothing waits behind the first, then finishes
	// the instant the worker takes it, and the worker takes the third event
	// at the same time.
	arrivals := []Arrival{
		{Admitted: true, Creates: 1},
		{Admitted: true, Creates: 0},
		{Admitted: true, Creates: 1},
	}
	r := simulate(t, arrivals, settings(3, 1, time.Second))

	assert.Equal(t, []EventTiming{
		{Index: 0, Received: 0, Started: 0, Wait: 0, Finished: time.Second},
		{Index: 1, Received: 0, Started: time.Second, Wait: time.Second, Finished: time.Second},
		{Index: 2, Received: 0, Started: time.Second, Wait: time.Second, Finished: 2 * time.Second},
	}, r.Events)
	assert.Equal(t, []DepthPoint{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {time.Second, 2}, {time.Second, 1}, {2 * time.Second, 0}}, r.Depth)
}

func TestSimulateSpeedDividesArrivalTimes(t *testing.T) {
	arrivals := []Arrival{
		{At: 0, Admitted: true, Creates: 1},
		{At: 10 * time.Second, Admitted: true, Creates: 1},
		{At: 20 * time.Second, Admitted: true, Creates: 1},
	}
	cases := []struct {
		name         string
		speed        float64
		wantReceived []time.Duration
		wantRejected int
	}{
		{name: "real time", speed: 1, wantReceived: []time.Duration{0, 10 * time.Second, 20 * time.Second}},
		{name: "ten times", speed: 10, wantReceived: []time.Duration{0, time.Second, 2 * time.Second}},
		{name: "twenty times", speed: 20, wantReceived: []time.Duration{0, time.Second}, wantRejected: 1},
		{name: "half", speed: 0.5, wantReceived: []time.Duration{0, 20 * time.Second, 40 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := settings(1, 1, time.Second)
			s.Speed = tc.speed
			r := simulate(t, arrivals, s)

			var received []time.Duration
			for _, ev := range r.Events {
				received = append(received, ev.Received)
			}
			assert.Equal(t, tc.wantReceived, received)
			assert.Equal(t, tc.wantRejected, r.Rejected)
		})
	}
}

func TestSimulateNotAdmittedTakesNoSlot(t *testing.T) {
	arrivals := []Arrival{
		{Admitted: false, Creates: 3},
		{Admitted: true, Creates: 1},
		{Admitted: false},
		{Admitted: true, Creates: 1},
	}
	r := simulate(t, arrivals, settings(1, 1, time.Second))

	assert.Equal(t, 4, r.Total)
	assert.Equal(t, 1, r.NotAdmitted, "the first fails admission while the pipeline has room")
	assert.Equal(t, 2, r.Admitted)
	assert.Equal(t, 1, r.Accepted)
	assert.Equal(t, 2, r.Rejected, "a full pipeline rejects before admission, so the third gets 503 too")
	assert.Len(t, r.Workflows, 1)
	assert.Equal(t, 1, r.MaxDepth)
}

func TestSimulateSortsArrivalsByTime(t *testing.T) {
	arrivals := []Arrival{
		{At: time.Second, Admitted: true, Creates: 1},
		{At: 0, Admitted: true, Creates: 1},
	}
	r := simulate(t, arrivals, settings(2, 1, time.Second))

	require.Len(t, r.Events, 2)
	assert.Equal(t, 1, r.Events[0].Index)
	assert.Equal(t, 0, r.Events[1].Index)
	assert.Equal(t, time.Second, r.Events[1].Started)
}

func TestSimulateWorkersShareQueue(t *testing.T) {
	arrivals := burst(4)
	for i := range arrivals {
		arrivals[i].Creates = 2
	}
	r := simulate(t, arrivals, settings(4, 2, time.Second))

	var created []time.Duration
	for _, wf := range r.Workflows {
		created = append(created, wf.Created)
	}
	s := time.Second
	assert.Equal(t, []time.Duration{1 * s, 2 * s, 1 * s, 2 * s, 3 * s, 4 * s, 3 * s, 4 * s}, created)
	assert.Equal(t, Percentiles{P50: 2 * s, P90: 4 * s, P99: 4 * s, Max: 4 * s}, r.Delay)
	assert.Equal(t, 4*s, r.LastCreated)
}

func TestSimulateEmptyStream(t *testing.T) {
	r := simulate(t, nil, settings(1, 1, time.Second))

	assert.Equal(t, 0, r.Total)
	assert.Equal(t, []DepthPoint{{0, 0}}, r.Depth)
	assert.Equal(t, Percentiles{}, r.Delay)
	assert.Equal(t, time.Duration(0), r.LastCreated)
}

func TestSimulateLatencyOverflowIsError(t *testing.T) {
	// Two creates of the maximum duration would overflow the clock.
	arrivals := []Arrival{{Admitted: true, Creates: 2}}

	_, err := Simulate(arrivals, settings(1, 1, math.MaxInt64))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "runs past about 292 years of virtual time")
}

func TestSimulateInvalidInput(t *testing.T) {
	valid := settings(1, 1, 0)
	cases := []struct {
		name     string
		modify   func(s *Settings)
		arrivals []Arrival
		wantErr  string
	}{
		{name: "zero size", modify: func(s *Settings) { s.PipelineSize = 0 }, wantErr: "invalid pipeline size 0"},
		{name: "negative workers", modify: func(s *Settings) { s.Workers = -2 }, wantErr: "invalid worker count -2"},
		{name: "zero speed", modify: func(s *Settings) { s.Speed = 0 }, wantErr: "invalid speed 0"},
		{name: "NaN speed", modify: func(s *Settings) { s.Speed = math.NaN() }, wantErr: "invalid speed NaN"},
		{name: "infinite speed", modify: func(s *Settings) { s.Speed = math.Inf(1) }, wantErr: "invalid speed +Inf"},
		{name: "negative time", arrivals: []Arrival{{}, {At: -time.Second}}, wantErr: "invalid arrival 1: negative time -1s"},
		{name: "negative creates", arrivals: []Arrival{{Creates: -1}}, wantErr: "invalid arrival 0: negative Workflow count -1"},
		{
			name:     "scaled time overflows",
			modify:   func(s *Settings) { s.Speed = 0.25 },
			arrivals: []Arrival{{At: math.MaxInt64 / 2}},
			wantErr:  "invalid arrival 0: time 1281023h53m38.427387903s at speed 0.25 is beyond the maximum duration",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			if tc.modify != nil {
				tc.modify(&s)
			}
			_, err := Simulate(tc.arrivals, s)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestPercentilesNearestRank(t *testing.T) {
	values := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			// Reversed, so percentiles must sort.
			out[i] = time.Duration(n - i)
		}
		return out
	}
	assert.Equal(t, Percentiles{P50: 50, P90: 90, P99: 99, Max: 100}, percentiles(values(100)))
	assert.Equal(t, Percentiles{P50: 5, P90: 9, P99: 10, Max: 10}, percentiles(values(10)))
	assert.Equal(t, Percentiles{P50: 1, P90: 1, P99: 1, Max: 1}, percentiles(values(1)))
	assert.Equal(t, Percentiles{P50: 2, P90: 3, P99: 3, Max: 3}, percentiles(values(3)))
	assert.Equal(t, Percentiles{P50: 100, P90: 180, P99: 198, Max: 200}, percentiles(values(200)))
}

// randomArrivals returns n admitted arrivals with exponential gaps of mean
// gap, each creating one to three Workflows.
func randomArrivals(n int, gap time.Duration, seed uint64) []Arrival {
	rng := rand.New(rand.NewPCG(seed, 1))
	arrivals := make([]Arrival, n)
	at := time.Duration(0)
	for i := range arrivals {
		at += time.Duration(float64(gap) * rng.ExpFloat64())
		arrivals[i] = Arrival{At: at, Admitted: true, Creates: 1 + i%3}
	}
	return arrivals
}

func TestSimulateDeterministic(t *testing.T) {
	arrivals := randomArrivals(500, 5*time.Millisecond, 7)
	latency, err := ParseLatency("lognormal:20ms,100ms")
	require.NoError(t, err)
	s := Settings{PipelineSize: 8, Workers: 2, Speed: 1, APILatency: latency, Seed: 1}

	first := simulate(t, arrivals, s)
	second := simulate(t, arrivals, s)
	assert.Equal(t, first, second)
	require.Positive(t, first.Rejected, "the load must overflow the pipeline to test much")

	s.Seed = 2
	other := simulate(t, arrivals, s)
	assert.NotEqual(t, first.Workflows, other.Workflows)
}

func TestSimulateSamplesRejectedEvents(t *testing.T) {
	// The second event is rejected at size 1 and accepted at size 2. It
	// draws its sample either way, so the third event gets the same
	// latency at both sizes.
	arrivals := []Arrival{
		{At: 0, Admitted: true, Creates: 1},
		{At: 0, Admitted: true, Creates: 1},
		{At: time.Hour, Admitted: true, Creates: 1},
	}
	latency, err := ParseLatency("exponential:20ms")
	require.NoError(t, err)
	s := Settings{PipelineSize: 1, Workers: 1, Speed: 1, APILatency: latency, Seed: 3}

	small := simulate(t, arrivals, s)
	s.PipelineSize = 2
	large := simulate(t, arrivals, s)

	require.Equal(t, 1, small.Rejected)
	require.Equal(t, 0, large.Rejected)
	assert.Equal(t, small.Workflows[len(small.Workflows)-1], large.Workflows[len(large.Workflows)-1])
}

func TestSimulateLargerPipelineCanRejectMore(t *testing.T) {
	// With fixed latency but events of different sizes, a larger pipeline
	// can reject more. At size 2 the long event B waits in a slot, then
	// holds the only worker while D and E arrive. At size 1 B is rejected
	// at once, so D and E find the worker free.
	arrivals := []Arrival{
		{At: 0, Admitted: true, Creates: 10},                // A
		{At: 1 * time.Second, Admitted: true, Creates: 100}, // B
		{At: 10 * time.Second, Admitted: true, Creates: 1},  // C
		{At: 11 * time.Second, Admitted: true, Creates: 1},  // D
		{At: 12 * time.Second, Admitted: true, Creates: 1},  // E
	}
	small := simulate(t, arrivals, settings(1, 1, time.Second))
	large := simulate(t, arrivals, settings(2, 1, time.Second))

	assert.Equal(t, 1, small.Rejected)
	assert.Equal(t, 2, large.Rejected)
}

// drawArrivals draws a stream of up to maxCount arrivals with gaps of whole
// milliseconds, many of them zero so that times tie.
func drawArrivals(t *rapid.T, maxCount int, creates *rapid.Generator[int]) []Arrival {
	n := rapid.IntRange(0, maxCount).Draw(t, "arrivals")
	arrivals := make([]Arrival, n)
	at := time.Duration(0)
	for i := range arrivals {
		at += time.Duration(rapid.IntRange(0, 20).Draw(t, "gap_ms")) * time.Millisecond
		arrivals[i] = Arrival{
			At:       at,
			Admitted: rapid.IntRange(0, 9).Draw(t, "admission") > 0,
			Creates:  creates.Draw(t, "creates"),
		}
	}
	return arrivals
}

// drawLatency draws a latency of any distribution, up to about 50ms.
func drawLatency(t *rapid.T) Latency {
	forms := []string{"20ms", "uniform:1ms-30ms", "normal:10ms,10ms", "exponential:10ms", "lognormal:5ms,50ms", "0s"}
	latency, err := ParseLatency(rapid.SampledFrom(forms).Draw(t, "latency"))
	if err != nil {
		t.Fatal(err)
	}
	return latency
}

func TestSimulateInvariantsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		arrivals := drawArrivals(t, 60, rapid.IntRange(0, 3))
		s := Settings{
			PipelineSize: rapid.IntRange(1, 8).Draw(t, "size"),
			Workers:      rapid.IntRange(1, 4).Draw(t, "workers"),
			Speed:        rapid.SampledFrom([]float64{0.5, 1, 3, 10}).Draw(t, "speed"),
			APILatency:   drawLatency(t),
			Seed:         rapid.Uint64().Draw(t, "seed"),
		}
		r, err := Simulate(arrivals, s)
		if err != nil {
			t.Fatal(err)
		}

		assert.Equal(t, r.Total, r.Accepted+r.Rejected+r.NotAdmitted, "total = accepted + rejected + not admitted")
		assert.LessOrEqual(t, r.Accepted+r.NotAdmitted, r.Total)
		assert.LessOrEqual(t, r.Accepted, r.Admitted, "only arrivals that pass admission are accepted")
		assert.Len(t, r.Events, r.Accepted)

		maxDepth := 0
		for i, point := range r.Depth {
			assert.GreaterOrEqual(t, point.Depth, 0, "depth point %d", i)
			assert.LessOrEqual(t, point.Depth, s.PipelineSize, "depth point %d", i)
			if i > 0 {
				assert.GreaterOrEqual(t, point.At, r.Depth[i-1].At, "depth point %d goes back in time", i)
			}
			maxDepth = max(maxDepth, point.Depth)
		}
		assert.Equal(t, maxDepth, r.MaxDepth)
		assert.Equal(t, 0, r.Depth[len(r.Depth)-1].Depth, "the pipeline drains")

		wantWorkflows := 0
		for i, ev := range r.Events {
			wantWorkflows += arrivals[ev.Index].Creates
			assert.GreaterOrEqual(t, ev.Wait, time.Duration(0), "event %d", i)
			assert.Equal(t, ev.Started-ev.Received, ev.Wait, "event %d", i)
			assert.GreaterOrEqual(t, ev.Finished, ev.Started, "event %d", i)
			if i > 0 {
				assert.GreaterOrEqual(t, ev.Started, r.Events[i-1].Started, "workers take events in the order accepted")
			}
		}
		assert.Len(t, r.Workflows, wantWorkflows)
		assert.LessOrEqual(t, busyWorkers(r.Events), s.Workers)
	})
}

// busyWorkers returns the largest number of events processed at once.
// An event that creates nothing is never busy.
func busyWorkers(events []EventTiming) int {
	maxBusy := 0
	for _, ev := range events {
		if ev.Finished == ev.Started {
			continue
		}
		busy := 0
		for _, other := range events {
			if other.Started <= ev.Started && ev.Started < other.Finished {
				busy++
			}
		}
		maxBusy = max(maxBusy, busy)
	}
	return maxBusy
}

func TestSimulateBurstAcceptsSizeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Every event creates a Workflow and nothing finishes at time 0,
		// so the burst fills the pipeline and no slot frees up.
		arrivals := drawArrivals(t, 40, rapid.IntRange(1, 3))
		for i := range arrivals {
			arrivals[i].At = 0
		}
		s := settings(
			rapid.IntRange(1, 10).Draw(t, "size"),
			rapid.IntRange(1, 4).Draw(t, "workers"),
			time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(t, "latency")),
		)
		r, err := Simulate(arrivals, s)
		if err != nil {
			t.Fatal(err)
		}

		assert.Equal(t, min(s.PipelineSize, r.Admitted), r.Accepted)
	})
}

func TestSimulateRejectedFallsWithSizeProperty(t *testing.T) {
	// The property holds for fixed latency when every event creates the
	// same number of Workflows. It fails when the counts differ, as
	// TestSimulateLargerPipelineCanRejectMore shows.
	rapid.Check(t, func(t *rapid.T) {
		creates := rapid.IntRange(0, 3).Draw(t, "creates_per_event")
		arrivals := drawArrivals(t, 60, rapid.Just(creates))
		workers := rapid.IntRange(1, 4).Draw(t, "workers")
		latency := time.Duration(rapid.IntRange(0, 40).Draw(t, "latency_ms")) * time.Millisecond
		size := rapid.IntRange(1, 8).Draw(t, "size")
		larger := size + rapid.IntRange(1, 8).Draw(t, "size_increase")

		small, err := Simulate(arrivals, settings(size, workers, latency))
		if err != nil {
			t.Fatal(err)
		}
		large, err := Simulate(arrivals, settings(larger, workers, latency))
		if err != nil {
			t.Fatal(err)
		}

		assert.LessOrEqual(t, large.Rejected, small.Rejected, "rejected at size %d, then at size %d", size, larger)
	})
}

// BenchmarkSimulate simulates 100,000 events arriving 20ms apart on
// average, about 2,000 seconds of virtual time, and reports how many times
// faster than real time the simulation runs.
func BenchmarkSimulate(b *testing.B) {
	arrivals := randomArrivals(100_000, 20*time.Millisecond, 1)
	latency, err := ParseLatency("lognormal:20ms,100ms")
	require.NoError(b, err)
	s := Settings{PipelineSize: 64, Workers: 4, Speed: 1, APILatency: latency, Seed: 1}
	span := arrivals[len(arrivals)-1].At

	b.ReportAllocs()
	for b.Loop() {
		if _, err := Simulate(arrivals, s); err != nil {
			b.Fatal(err)
		}
	}
	perRun := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(span.Seconds()/perRun.Seconds(), "x_real_time")
}

func TestSimulateRejectsVirtualTimeOverflow(t *testing.T) {
	arrivals := []Arrival{{Admitted: true, Creates: 3}}

	_, err := Simulate(arrivals, Settings{PipelineSize: 1, Workers: 1, Speed: 1, APILatency: FixedLatency(1_000_000 * time.Hour), Seed: 1})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "the simulation runs past about 292 years of virtual time")
	assert.Contains(t, err.Error(), "use a smaller API latency (1000000h0m0s)")
}
