package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
)

// waitTimeout bounds every wait in these tests. It is long because it only
// matters when a test is about to fail, and -race slows everything down.
const waitTimeout = 10 * time.Second

// gatedProcessor records every event it is given and blocks inside Process
// until release is closed or the context is done. Blocking inside Process is
// what a slow Kubernetes API call looks like to the pipeline: the event still
// holds its slot.
type gatedProcessor struct {
	release chan struct{}

	mu    sync.Mutex
	calls map[string]int // event ID to number of Process calls
	errs  []error        // ctx.Err() when each Process call returned
}

func newGatedProcessor() *gatedProcessor {
	return &gatedProcessor{release: make(chan struct{}), calls: make(map[string]int)}
}

func (g *gatedProcessor) Process(ctx context.Context, ev model.Event) {
	g.mu.Lock()
	g.calls[ev.ID]++
	g.mu.Unlock()

	select {
	case <-g.release:
	case <-ctx.Done():
	}

	g.mu.Lock()
	g.errs = append(g.errs, ctx.Err())
	g.mu.Unlock()
}

// Calls returns a copy of the Process call counts by event ID.
func (g *gatedProcessor) Calls() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	calls := make(map[string]int, len(g.calls))
	for id, n := range g.calls {
		calls[id] = n
	}
	return calls
}

// Errs returns the context errors seen when Process calls returned.
func (g *gatedProcessor) Errs() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]error(nil), g.errs...)
}

// syncBuffer is a bytes.Buffer that is safe for concurrent writers.
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

// testLogger returns a logger that writes to the test output and to extra.
func testLogger(t testing.TB, extra ...io.Writer) *slog.Logger {
	t.Helper()
	w := io.MultiWriter(append([]io.Writer{t.Output()}, extra...)...)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startPipeline returns a started pipeline that logs to the test output. The
// cleanup shuts it down, unless the test did, and waits for its workers, so
// no worker logs after the test has returned.
func startPipeline(t testing.TB, cfg Config, proc Processor) *Pipeline {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	p, err := NewPipeline(cfg, proc)
	require.NoError(t, err)
	p.Start(context.Background())

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = p.Shutdown(ctx)
		waitClosed(t, p.done, "workers to return")
	})
	return p
}

// waitClosed fails the test unless ch is closed within waitTimeout.
func waitClosed(t testing.TB, ch <-chan struct{}, condition string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, condition)
	}
}

// shutdown calls Shutdown with waitTimeout and returns its results.
func shutdown(t testing.TB, p *Pipeline) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return p.Shutdown(ctx)
}

func event(i int) model.Event {
	return model.Event{ID: fmt.Sprintf("ev-%03d", i), Namespace: "argo"}
}

func TestNewPipelineDefaults(t *testing.T) {
	p, err := NewPipeline(Config{}, newGatedProcessor())
	require.NoError(t, err)

	assert.Equal(t, DefaultSize, p.Capacity())
	assert.Equal(t, DefaultWorkers, p.workers)
	assert.NotNil(t, p.log)
	assert.Equal(t, 0, p.Depth())
}

func TestNewPipelineInvalidConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		proc      Processor
		wantField string
	}{
		{name: "negative size", cfg: Config{Size: -1}, proc: newGatedProcessor(), wantField: "Size -1"},
		{name: "negative workers", cfg: Config{Workers: -2}, proc: newGatedProcessor(), wantField: "Workers -2"},
		{name: "nil processor", cfg: Config{}, proc: nil, wantField: "processor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPipeline(tt.cfg, tt.proc)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tt.wantField)
		})
	}
}

func TestEnqueueFullWithBlockedWorkers(t *testing.T) {
	proc := newGatedProcessor()
	p := startPipeline(t, Config{Size: 3, Workers: 2}, proc)

	for i := range 3 {
		require.NoError(t, p.Enqueue(event(i)), "event %d", i)
	}
	assert.Equal(t, 3, p.Depth())
	assert.Equal(t, 3, p.Capacity())

	err := p.Enqueue(event(3))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrFull)
	var modelErr *model.Error
	require.ErrorAs(t, err, &modelErr)
	assert.Equal(t, model.CodeUnavailable, modelErr.Code)
	assert.Equal(t, "event pipeline is full with 3 events; retry later", modelErr.Message)
	assert.Equal(t, 3, p.Depth(), "a rejected event must not take a slot")

	close(proc.release)
}

func TestPipelineProcessesEachEventOnce(t *testing.T) {
	proc := newGatedProcessor()
	p := startPipeline(t, Config{Size: 5, Workers: 3}, proc)
	for i := range 5 {
		require.NoError(t, p.Enqueue(event(i)))
	}
	require.ErrorIs(t, p.Enqueue(event(5)), ErrFull)

	close(proc.release)
	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	assert.Equal(t, 0, p.Depth())
	want := map[string]int{}
	for i := range 5 {
		want[event(i).ID] = 1
	}
	assert.Equal(t, want, proc.Calls())
}

func TestPipelineAcceptsAgainAfterRelease(t *testing.T) {
	proc := newGatedProcessor()
	p := startPipeline(t, Config{Size: 2, Workers: 1}, proc)
	require.NoError(t, p.Enqueue(event(0)))
	require.NoError(t, p.Enqueue(event(1)))
	require.ErrorIs(t, p.Enqueue(event(2)), ErrFull)

	close(proc.release)
	require.Eventually(t, func() bool { return p.Depth() == 0 }, waitTimeout, time.Millisecond)

	assert.NoError(t, p.Enqueue(event(3)))
	assert.NoError(t, p.Enqueue(event(4)))
}

func TestEnqueueAfterShutdown(t *testing.T) {
	p := startPipeline(t, Config{Size: 2, Workers: 1}, newGatedProcessor())
	left, err := shutdown(t, p)
	require.NoError(t, err)
	require.Equal(t, 0, left)

	err = p.Enqueue(event(0))

	assert.ErrorIs(t, err, ErrShuttingDown)
	assert.Equal(t, model.CodeUnavailable, model.ErrorCode(err))
	assert.Equal(t, "server is shutting down", model.ErrorMessage(err))
}

func TestShutdownTimeoutReturnsLeft(t *testing.T) {
	proc := newGatedProcessor()
	p := startPipeline(t, Config{Size: 4, Workers: 1}, proc)
	for i := range 3 {
		require.NoError(t, p.Enqueue(event(i)))
	}
	// Wait until the only worker is inside Process, so one event is in
	// flight and two are queued.
	require.Eventually(t, func() bool { return len(proc.Calls()) == 1 }, waitTimeout, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	left, err := p.Shutdown(ctx)

	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 3, left)
	waitClosed(t, p.done, "workers to return after the timeout")
	assert.Equal(t, map[string]int{event(0).ID: 1}, proc.Calls(), "queued events must not be processed after the timeout")
	assert.Equal(t, []error{context.Canceled}, proc.Errs(), "the in-flight Process call must see a cancelled context")
	assert.Equal(t, 2, p.Depth(), "abandoned events stay counted")
}

func TestShutdownTimeoutNamesDropped(t *testing.T) {
	proc := newGatedProcessor()
	var logs syncBuffer
	p := startPipeline(t, Config{Size: 4, Workers: 1, Logger: testLogger(t, &logs)}, proc)
	for i := range 3 {
		require.NoError(t, p.Enqueue(event(i)))
	}
	require.Eventually(t, func() bool { return len(proc.Calls()) == 1 }, waitTimeout, time.Millisecond)
	require.True(t, p.Accepting())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Shutdown(ctx)
	require.ErrorIs(t, err, context.Canceled)
	waitClosed(t, p.done, "workers to return after the timeout")

	assert.False(t, p.Accepting())
	for _, dropped := range []model.Event{event(1), event(2)} {
		assert.Contains(t, logs.String(), `msg="event dropped unprocessed" event_id=`+dropped.ID)
	}
	assert.NotContains(t, logs.String(), "event_id="+event(0).ID+" namespace", "the cancelled in-flight event is the processor's to report")
}

func TestShutdownTwice(t *testing.T) {
	p := startPipeline(t, Config{Size: 1, Workers: 1}, newGatedProcessor())
	_, err := shutdown(t, p)
	require.NoError(t, err)

	left, err := shutdown(t, p)

	assert.ErrorIs(t, err, errShutdownCalled)
	assert.Equal(t, 0, left)
}

func TestShutdownBeforeStart(t *testing.T) {
	proc := newGatedProcessor()
	p, err := NewPipeline(Config{Size: 3, Logger: testLogger(t)}, proc)
	require.NoError(t, err)
	require.NoError(t, p.Enqueue(event(0)))
	require.NoError(t, p.Enqueue(event(1)))

	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 2, left)
	assert.Empty(t, proc.Calls())
	assert.Panics(t, func() { p.Start(context.Background()) })
}

func TestStartTwicePanics(t *testing.T) {
	p := startPipeline(t, Config{Size: 1, Workers: 1}, newGatedProcessor())

	assert.PanicsWithValue(t, "workers: Pipeline.Start called twice", func() { p.Start(context.Background()) })
}

func TestStartContextCancelStopsWorkers(t *testing.T) {
	proc := newGatedProcessor()
	p, err := NewPipeline(Config{Size: 4, Workers: 1, Logger: testLogger(t)}, proc)
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, p.Enqueue(event(i)))
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	p.Start(ctx)
	require.Eventually(t, func() bool { return len(proc.Calls()) == 1 }, waitTimeout, time.Millisecond)

	stopErr := errors.New("test stop")
	cancel(stopErr)
	waitClosed(t, p.done, "workers to return after the Start context was cancelled")
	left, err := shutdown(t, p)

	assert.ErrorIs(t, err, stopErr)
	assert.Equal(t, 2, left)
	assert.Len(t, proc.Calls(), 1)
}

func TestProcessContextDerivesFromStart(t *testing.T) {
	type key struct{}
	values := make(chan any, 1)
	proc := ProcessorFunc(func(ctx context.Context, ev model.Event) {
		values <- ctx.Value(key{})
	})
	p, err := NewPipeline(Config{Size: 1, Workers: 1, Logger: testLogger(t)}, proc)
	require.NoError(t, err)
	p.Start(context.WithValue(context.Background(), key{}, "base"))

	require.NoError(t, p.Enqueue(event(0)))
	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	select {
	case v := <-values:
		assert.Equal(t, "base", v)
	default:
		t.Fatal("Process was not called before Shutdown returned")
	}
}

func TestProcessPanicReleasesSlot(t *testing.T) {
	var logs syncBuffer
	processed := make(chan string, 1)
	proc := ProcessorFunc(func(ctx context.Context, ev model.Event) {
		if ev.ID == "bad" {
			panic("bad event")
		}
		processed <- ev.ID
	})
	counters := metrics.New(metrics.Config{})
	p := startPipeline(t, Config{Size: 1, Workers: 1, Logger: testLogger(t, &logs), Metrics: counters}, proc)

	require.NoError(t, p.Enqueue(model.Event{ID: "bad"}))
	require.Eventually(t, func() bool { return p.Depth() == 0 }, waitTimeout, time.Millisecond, "the panicking event must release its slot")
	require.NoError(t, p.Enqueue(model.Event{ID: "good"}))

	select {
	case id := <-processed:
		assert.Equal(t, "good", id, "the worker must survive the panic")
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the event after the panic")
	}
	assert.Contains(t, logs.String(), "event_id=bad")
	assert.Contains(t, logs.String(), `panic="bad event"`)
	rec := httptest.NewRecorder()
	counters.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	assert.Contains(t, rec.Body.String(), "wfevents_worker_panics_total 1", "the panic is counted")
}

func TestEnqueueConcurrentWithShutdown(t *testing.T) {
	const senders, perSender = 8, 50
	var processed sync.Map
	proc := ProcessorFunc(func(ctx context.Context, ev model.Event) { processed.Store(ev.ID, true) })
	p := startPipeline(t, Config{Size: 16, Workers: 2}, proc)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []string
	var unexpected []error
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				ev := model.Event{ID: fmt.Sprintf("s%d-%d", s, i)}
				err := p.Enqueue(ev)
				mu.Lock()
				switch {
				case err == nil:
					accepted = append(accepted, ev.ID)
				case !errors.Is(err, ErrFull) && !errors.Is(err, ErrShuttingDown):
					unexpected = append(unexpected, err)
				}
				mu.Unlock()
			}
		})
	}
	left, err := shutdown(t, p)
	wg.Wait()

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	assert.Empty(t, unexpected)
	for _, id := range accepted {
		_, ok := processed.Load(id)
		assert.True(t, ok, "accepted event %s was not processed", id)
	}
}

// TestPipelineCapacityProperty checks that, with every worker blocked inside
// Process, the pipeline accepts exactly min(arrivals, size) events, and that
// after release it processes each accepted event once and no rejected one.
func TestPipelineCapacityProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		size := rapid.IntRange(1, 128).Draw(rt, "size")
		workers := rapid.IntRange(1, 16).Draw(rt, "workers")
		arrivals := rapid.IntRange(0, 300).Draw(rt, "arrivals")
		rt.Logf("size=%d workers=%d arrivals=%d", size, workers, arrivals)

		proc := newGatedProcessor()
		logger := slog.New(slog.NewTextHandler(rt.Output(), nil))
		p, err := NewPipeline(Config{Size: size, Workers: workers, Logger: logger}, proc)
		require.NoError(rt, err)
		p.Start(context.Background())
		released := false
		rt.Cleanup(func() {
			if !released {
				close(proc.release)
			}
		})

		var accepted, rejected []string
		for i := range arrivals {
			ev := event(i)
			err := p.Enqueue(ev)
			if err == nil {
				accepted = append(accepted, ev.ID)
				continue
			}
			require.ErrorIs(rt, err, ErrFull, "event %d", i)
			rejected = append(rejected, ev.ID)
		}
		rt.Logf("accepted=%d rejected=%d depth=%d", len(accepted), len(rejected), p.Depth())
		require.Len(rt, accepted, min(arrivals, size))
		require.Equal(rt, len(accepted), p.Depth())
		// Every rejection came after the pipeline filled, never before.
		for i, id := range accepted {
			require.Equal(rt, event(i).ID, id)
		}

		close(proc.release)
		released = true
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		left, err := p.Shutdown(ctx)
		require.NoError(rt, err)
		require.Equal(rt, 0, left)

		calls := proc.Calls()
		for _, id := range accepted {
			require.Equal(rt, 1, calls[id], "Process calls for accepted event %s", id)
		}
		for _, id := range rejected {
			require.Zero(rt, calls[id], "Process calls for rejected event %s", id)
		}
		require.Len(rt, calls, len(accepted))
	})
}

func TestCheckRoom(t *testing.T) {
	proc := newGatedProcessor()
	p := startPipeline(t, Config{Size: 1, Workers: 1}, proc)
	require.NoError(t, p.CheckRoom())

	require.NoError(t, p.Enqueue(event(0)))

	err := p.CheckRoom()
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, model.CodeUnavailable, model.ErrorCode(err))
}
