package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Arrival is one request of a stream, reduced to what the event pipeline
// uses.
type Arrival struct {
	// At is when the server received the request, as an offset from the
	// first request of the stream, before Settings.Speed applies. It must
	// not be negative.
	At time.Duration

	// Admitted reports whether the request passes admission (auth and
	// body), so that it needs a pipeline slot. A request that is not
	// admitted is only counted and never takes a slot.
	Admitted bool

	// Creates is the number of Workflows that processing the event
	// creates, one per matching template. It must not be negative.
	Creates int
}

// Settings configures a simulation.
type Settings struct {
	// PipelineSize is the number of events the pipeline holds at once,
	// queued or being processed, as --event-pipeline-size sets it. It must
	// be at least 1.
	PipelineSize int

	// Workers is the number of workers that process events, as
	// --event-worker-count sets it. It must be at least 1.
	Workers int

	// Speed divides every Arrival.At: 1 replays the stream in real time,
	// 10 ten times faster. It must be a positive finite number.
	Speed float64

	// APILatency is the time the API server takes for each create.
	APILatency Latency

	// Seed seeds the random latency samples.
	Seed uint64
}

// validate returns an error naming the first invalid setting.
func (s Settings) validate() error {
	if s.PipelineSize < 1 {
		return fmt.Errorf("invalid pipeline size %d: must be at least 1", s.PipelineSize)
	}
	if s.Workers < 1 {
		return fmt.Errorf("invalid worker count %d: must be at least 1", s.Workers)
	}
	if !(s.Speed > 0) || math.IsInf(s.Speed, 1) {
		return fmt.Errorf("invalid speed %v: must be a positive finite number, such as 1 for real time", s.Speed)
	}
	return nil
}

// Result is the outcome of a simulation. Times are virtual: offsets from
// the first request of the stream, after Speed applies.
type Result struct {
	// Settings are the settings simulated.
	Settings Settings

	// Total is the number of arrivals, and Admitted of them pass
	// admission. Rejected got a 503 because the pipeline was full, which
	// the server checks before admission, so it counts arrivals that would
	// fail admission too. Of the others, Accepted got a pipeline slot and
	// NotAdmitted failed admission. Total = Accepted + Rejected +
	// NotAdmitted.
	Total       int
	Admitted    int
	NotAdmitted int
	Accepted    int
	Rejected    int

	// Depth is the pipeline depth over time: a point at time 0 with depth
	// 0, then one point at every change, in time order. Several points
	// may share a time, for example the arrival and the finish of an
	// event that creates no Workflow.
	Depth []DepthPoint

	// MaxDepth is the largest depth in Depth.
	MaxDepth int

	// Events are the accepted events, in the order they were accepted.
	Events []EventTiming

	// Workflows are the created Workflows, in the order of their events
	// in Events and, within an event, in the order created.
	Workflows []WorkflowTiming

	// Delay summarizes WorkflowTiming.Delay over Workflows.
	Delay Percentiles

	// LastCreated is when the last Workflow was created, or 0 when none
	// was.
	LastCreated time.Duration
}

// DepthPoint is the pipeline depth from time At until the next point.
type DepthPoint struct {
	At    time.Duration
	Depth int
}

// EventTiming is the timing of one accepted event.
type EventTiming struct {
	// Index is the position of the event in the arrivals.
	Index int

	Received time.Duration

	// Started is when a worker took the event from the queue, and Wait is
	// Started minus Received.
	Started time.Duration
	Wait    time.Duration

	// Finished is when the worker finished the event and its slot became
	// free.
	Finished time.Duration
}

// WorkflowTiming is the timing of one created Workflow.
type WorkflowTiming struct {
	// Event is the position of the Workflow's event in the arrivals.
	Event int

	Created time.Duration

	// Delay is Created minus the time the event was received.
	Delay time.Duration
}

// Percentiles summarizes a set of durations with the nearest-rank method:
// the p-th percentile of n sorted values is the value at 1-based rank
// ceil(p/100 * n), so it is always one of the values. All fields are 0 for
// an empty set.
type Percentiles struct {
	P50, P90, P99, Max time.Duration
}

// Simulate runs a model of the event pipeline on arrivals with a virtual
// clock and returns the outcome. It is deterministic: the same arrivals and
// settings give the same Result.
//
// The model follows the server's event pipeline. An admitted request gets
// a slot when fewer than PipelineSize events are held, and a 503 otherwise.
// Workers take events from the queue in the order accepted. A worker
// creates the event's Workflows one after another, so the i-th create ends
// at the time the worker took the event plus the sum of the first i latency
// samples. The event finishes with its last create, which frees its slot
// and its worker. An event that creates no Workflow finishes the instant a
// worker takes it.
//
// At equal virtual times, finishes apply before arrivals, so a slot freed
// at t is free for a request received at t. Requests received at the same
// time arrive in the order of arrivals, which need not be sorted by At:
// Simulate orders them by At and keeps that order for equal times.
//
// Latency samples come from the math/rand/v2 generator rand.NewPCG(Seed, 0).
// Each admitted arrival, in the order of arrivals, draws one sample per
// Workflow it creates, even when it is rejected, so an event gets the same
// latencies at every pipeline size and worker count.
//
// NOTE: the model ignores the CPU time of admission, the reads of
// templates, the retries of transient create errors, and the Retry-After
// waits that the API server requests. Real delays are longer by those amounts.
//
// NOTE: math/rand/v2 does not document its samples as stable across Go
// releases, so a result may change with the Go version.
func Simulate(arrivals []Arrival, s Settings) (Result, error) {
	if err := s.validate(); err != nil {
		return Result{}, err
	}
	received, err := receiveTimes(arrivals, s.Speed)
	if err != nil {
		return Result{}, err
	}

	sim := newSimulator(arrivals, received, s)
	sim.run()
	// addDurations saturates, so a run past the largest duration ends
	// exactly there.
	if sim.out.LastCreated == math.MaxInt64 {
		return Result{}, fmt.Errorf("the simulation runs past about 292 years of virtual time, the largest a duration holds: use a smaller API latency (%s) or fewer events", s.APILatency)
	}
	return sim.result(), nil
}

// receiveTimes validates arrivals and returns their virtual receive times:
// At divided by speed, rounded to the nearest nanosecond.
func receiveTimes(arrivals []Arrival, speed float64) ([]time.Duration, error) {
	received := make([]time.Duration, len(arrivals))
	for i, a := range arrivals {
		if a.At < 0 {
			return nil, fmt.Errorf("invalid arrival %d: negative time %v", i, a.At)
		}
		if a.Creates < 0 {
			return nil, fmt.Errorf("invalid arrival %d: negative Workflow count %d", i, a.Creates)
		}

		if speed == 1 {
			received[i] = a.At
			continue
		}
		scaled := math.Round(float64(a.At) / speed)
		if scaled >= math.MaxInt64 {
			return nil, fmt.Errorf("invalid arrival %d: time %v at speed %v is beyond the maximum duration: raise the speed", i, a.At, speed)
		}
		received[i] = time.Duration(scaled)
	}
	return received, nil
}

// simulator is the state of one simulation. Every step handles one arrival
// or one finish, so a run takes at most len(arrivals) plus Accepted steps.
type simulator struct {
	arrivals []Arrival
	received []time.Duration
	settings Settings

	// samples contains the latency samples of every admitted arrival, and
	// firstSample[i] is the index of arrival i's first sample.
	samples     []time.Duration
	firstSample []int

	// queue contains the arrivals accepted and not yet taken by a worker,
	// from queue[head] on.
	queue []int
	head  int

	// finishes contains the finish times of the events being processed.
	finishes durationHeap

	idle  int
	depth int

	out Result
}

func newSimulator(arrivals []Arrival, received []time.Duration, s Settings) *simulator {
	sim := &simulator{
		arrivals:    arrivals,
		received:    received,
		settings:    s,
		firstSample: make([]int, len(arrivals)),
		idle:        s.Workers,
		out: Result{
			Settings: s,
			Total:    len(arrivals),
			Depth:    []DepthPoint{{At: 0, Depth: 0}},
		},
	}
	sim.drawSamples()

	// Size the outputs for the case where every admitted arrival is
	// accepted, so they never grow.
	admitted := 0
	for _, a := range arrivals {
		if a.Admitted {
			admitted++
		}
	}
	sim.out.Depth = slices.Grow(sim.out.Depth, 2*admitted)
	sim.out.Events = make([]EventTiming, 0, admitted)
	sim.out.Workflows = make([]WorkflowTiming, 0, len(sim.samples))
	sim.queue = make([]int, 0, admitted)
	return sim
}

// drawSamples draws the latency samples of every admitted arrival, in the
// order of arrivals.
func (sim *simulator) drawSamples() {
	total := 0
	for _, a := range sim.arrivals {
		if a.Admitted {
			total += a.Creates
		}
	}

	rng := rand.New(rand.NewPCG(sim.settings.Seed, 0))
	sim.samples = make([]time.Duration, 0, total)
	for i, a := range sim.arrivals {
		sim.firstSample[i] = len(sim.samples)
		if !a.Admitted {
			continue
		}
		for range a.Creates {
			sim.samples = append(sim.samples, sim.settings.APILatency.Sample(rng))
		}
	}
}

// run handles every arrival in the order of receive time, each after the
// finishes up to its time, then the finishes left.
func (sim *simulator) run() {
	order := make([]int, len(sim.arrivals))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return cmp.Compare(sim.received[i], sim.received[j])
	})

	for _, i := range order {
		sim.finishUntil(sim.received[i])
		sim.arrive(i)
	}
	sim.finishUntil(math.MaxInt64)
}

// finishUntil finishes, in time order, every event that finishes at or
// before t.
func (sim *simulator) finishUntil(t time.Duration) {
	for len(sim.finishes) > 0 && sim.finishes[0] <= t {
		at := sim.finishes.pop()
		sim.idle++
		sim.setDepth(at, sim.depth-1)
		sim.startQueued(at)
	}
}

// arrive handles arrival i at its receive time: it rejects it when the
// pipeline is full, and else accepts it if it passes admission.
func (sim *simulator) arrive(i int) {
	admitted := sim.arrivals[i].Admitted
	if admitted {
		sim.out.Admitted++
	}

	// The server returns 503 for any event while the pipeline is full,
	// before it authenticates or reads the request.
	now := sim.received[i]
	if sim.depth >= sim.settings.PipelineSize {
		sim.out.Rejected++
		return
	}
	if !admitted {
		sim.out.NotAdmitted++
		return
	}
	sim.out.Accepted++
	sim.setDepth(now, sim.depth+1)
	sim.queue = append(sim.queue, i)
	sim.startQueued(now)
}

// startQueued gives queued events to idle workers at time now.
func (sim *simulator) startQueued(now time.Duration) {
	for sim.idle > 0 && sim.head < len(sim.queue) {
		i := sim.queue[sim.head]
		sim.head++
		sim.start(i, now)
	}
}

// start has an idle worker take arrival i at time now and records the
// times of its creates. An event that creates nothing finishes at once and
// leaves the worker idle.
func (sim *simulator) start(i int, now time.Duration) {
	received := sim.received[i]
	end := now
	first := sim.firstSample[i]
	for _, latency := range sim.samples[first : first+sim.arrivals[i].Creates] {
		end = addDurations(end, latency)
		sim.out.Workflows = append(sim.out.Workflows, WorkflowTiming{Event: i, Created: end, Delay: end - received})
		sim.out.LastCreated = max(sim.out.LastCreated, end)
	}
	sim.out.Events = append(sim.out.Events, EventTiming{
		Index:    i,
		Received: received,
		Started:  now,
		Wait:     now - received,
		Finished: end,
	})

	if sim.arrivals[i].Creates == 0 {
		sim.setDepth(now, sim.depth-1)
		return
	}
	sim.idle--
	sim.finishes.push(end)
}

// setDepth records a change of depth at time at.
func (sim *simulator) setDepth(at time.Duration, depth int) {
	sim.depth = depth
	sim.out.Depth = append(sim.out.Depth, DepthPoint{At: at, Depth: depth})
	sim.out.MaxDepth = max(sim.out.MaxDepth, depth)
}

// result returns the result with the delay percentiles filled in.
func (sim *simulator) result() Result {
	delays := make([]time.Duration, len(sim.out.Workflows))
	for i, wf := range sim.out.Workflows {
		delays[i] = wf.Delay
	}
	sim.out.Delay = percentiles(delays)
	return sim.out
}

// percentiles returns the nearest-rank percentiles of values, which it
// sorts.
func percentiles(values []time.Duration) Percentiles {
	if len(values) == 0 {
		return Percentiles{}
	}
	slices.Sort(values)
	return Percentiles{
		P50: nearestRank(values, 50),
		P90: nearestRank(values, 90),
		P99: nearestRank(values, 99),
		Max: values[len(values)-1],
	}
}

// nearestRank returns the p-th percentile of sorted, a non-empty slice: the
// value at 1-based rank ceil(p*n/100).
func nearestRank(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// addDurations returns a+b for durations that are not negative, or the
// maximum duration when the sum overflows.
func addDurations(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// durationHeap is a binary min-heap of durations. It avoids
// container/heap, whose interface boxes every value it moves.
type durationHeap []time.Duration

func (h *durationHeap) push(d time.Duration) {
	*h = append(*h, d)
	heap := *h
	i := len(heap) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if heap[parent] <= heap[i] {
			break
		}
		heap[parent], heap[i] = heap[i], heap[parent]
		i = parent
	}
}

// pop removes and returns the smallest duration. The heap must not be
// empty.
func (h *durationHeap) pop() time.Duration {
	heap := *h
	smallest := heap[0]
	last := len(heap) - 1
	heap[0] = heap[last]
	heap = heap[:last]
	*h = heap

	i := 0
	for {
		child := 2*i + 1
		if child >= len(heap) {
			break
		}
		if right := child + 1; right < len(heap) && heap[right] < heap[child] {
			child = right
		}
		if heap[i] <= heap[child] {
			break
		}
		heap[i], heap[child] = heap[child], heap[i]
		i = child
	}
	return smallest
}
