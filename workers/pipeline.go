package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/wfevents/wfevents/model"
)

// Defaults for the zero values of [Config].
const (
	DefaultSize    = 64
	DefaultWorkers = 4
)

// ErrFull is the internal cause of the error that [Pipeline.Enqueue] returns
// when the pipeline is full. Test for it with errors.Is, for example to add a
// Retry-After header.
var ErrFull = errors.New("pipeline full")

// ErrShuttingDown is the error that [Pipeline.Enqueue] returns once
// [Pipeline.Shutdown] has been called.
var ErrShuttingDown = &model.Error{
	Code:    model.CodeUnavailable,
	Message: "server is shutting down",
}

// errShutdownCalled is returned by every Shutdown call after the first.
var errShutdownCalled = errors.New("pipeline shutdown already called")

// Processor processes one event. Implementations must be safe for concurrent
// use, because every worker calls the same Processor.
type Processor interface {
	// Process handles ev. It should return soon after ctx is done, because
	// a timed-out shutdown cancels ctx and does not wait any longer.
	Process(ctx context.Context, ev model.Event)
}

// ProcessorFunc adapts an ordinary function to the [Processor] interface.
type ProcessorFunc func(ctx context.Context, ev model.Event)

// Process calls f(ctx, ev).
func (f ProcessorFunc) Process(ctx context.Context, ev model.Event) { f(ctx, ev) }

// Config configures a [Pipeline].
type Config struct {
	// Size is the maximum number of events held at once: queued, or being
	// processed by a worker. Zero means DefaultSize.
	Size int

	// Workers is the number of goroutines that process events. Zero means
	// DefaultWorkers.
	Workers int

	// Logger receives the pipeline's lifecycle messages and recovered
	// panics. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with its zero values replaced by the defaults, or
// an error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Size < 0 {
		return cfg, fmt.Errorf("invalid pipeline Size %d: must be 0 for the default or positive", cfg.Size)
	}
	if cfg.Workers < 0 {
		return cfg, fmt.Errorf("invalid pipeline Workers %d: must be 0 for the default or positive", cfg.Workers)
	}

	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Pipeline is a bounded queue of events in front of a pool of workers.
// Events may finish in a different order from the one they were enqueued in.
// Its methods are safe for concurrent use.
type Pipeline struct {
	proc    Processor
	log     *slog.Logger
	workers int

	// slots is a semaphore with one token per held event. Enqueue takes a
	// token without blocking and a worker returns it when Process returns,
	// so len(slots) is the number of events held.
	slots chan struct{}

	// queue has the same capacity as slots and every event in it holds a
	// token, so the send after Enqueue takes a token never blocks.
	queue chan model.Event

	// errFull is built once, so rejecting events under overload allocates
	// nothing.
	errFull *model.Error

	// done is closed when every worker has returned.
	done chan struct{}

	// mu guards the fields below. Enqueue holds the read lock while it
	// sends, so Shutdown cannot close queue under it.
	mu      sync.RWMutex
	started bool
	closed  bool
	ctx     context.Context // processing context, set by Start
	cancel  context.CancelFunc
}

// NewPipeline returns a pipeline that passes events to proc. Call
// [Pipeline.Start] to run its workers.
func NewPipeline(cfg Config, proc Processor) (*Pipeline, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if proc == nil {
		return nil, errors.New("invalid pipeline processor: must not be nil")
	}

	return &Pipeline{
		proc:    proc,
		log:     cfg.Logger,
		workers: cfg.Workers,
		slots:   make(chan struct{}, cfg.Size),
		queue:   make(chan model.Event, cfg.Size),
		errFull: &model.Error{
			Code:    model.CodeUnavailable,
			Message: fmt.Sprintf("event pipeline is full with %d events; retry later", cfg.Size),
			Err:     ErrFull,
		},
		done: make(chan struct{}),
	}, nil
}

// Start starts the workers. Every Process call gets a context derived from
// ctx, never from the request that enqueued the event, so an event outlives
// its request. Cancelling ctx stops the workers, and the events they have
// not taken stay unprocessed.
//
// Start panics if it is called twice or after Shutdown.
func (p *Pipeline) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		panic("workers: Pipeline.Start called twice")
	}
	if p.closed {
		panic("workers: Pipeline.Start called after Shutdown")
	}
	p.started = true
	p.ctx, p.cancel = context.WithCancel(ctx)

	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(p.work)
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	p.log.Info("event workers started", "workers", p.workers, "pipeline_size", cap(p.slots))
}

// Enqueue adds ev to the pipeline and returns without waiting for it to be
// processed. It never waits for room. When the pipeline is full it returns a
// *model.Error with code CodeUnavailable that wraps [ErrFull], and after
// Shutdown it returns [ErrShuttingDown].
//
// Events enqueued before Start wait for the workers.
func (p *Pipeline) Enqueue(ev model.Event) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrShuttingDown
	}

	select {
	case p.slots <- struct{}{}:
	default:
		return p.errFull
	}
	p.queue <- ev
	return nil
}

// Shutdown stops intake, so later Enqueue calls return [ErrShuttingDown],
// then waits until the workers have processed every queued event or ctx is
// done.
//
// If ctx ends first, Shutdown cancels the processing context, so the workers
// take no more events, and returns at once with ctx.Err(). It does not wait
// for Process calls that ignore the cancellation. left is then the number of
// events held when ctx ended: the queued ones, which will never be processed,
// and the ones whose Process call was running and is now cancelled. A Process
// call that returns just as ctx ends may be counted although it finished.
//
// If Start was never called, Shutdown returns at once and every queued event
// counts as left. If the context given to Start was cancelled, the events the
// workers abandoned count as left and err is that context's cause. Calls
// after the first return an error.
func (p *Pipeline) Shutdown(ctx context.Context) (left int, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, errShutdownCalled
	}
	p.closed = true
	close(p.queue)
	started := p.started
	p.mu.Unlock()

	if !started {
		left = p.Depth()
		p.log.Info("event pipeline shut down before start", "left", left)
		return left, nil
	}

	p.log.Info("draining event pipeline", "held", p.Depth())
	select {
	case <-p.done:
		return p.drained()
	case <-ctx.Done():
		// Count before cancelling, because a cancelled Process call returns
		// and releases its slot without having finished its work.
		left = p.Depth()
		p.cancel()
		p.log.Warn("event pipeline shutdown timed out: raise the drain timeout to finish more events", "left", left, "error", ctx.Err())

		// Name every queued event that will never be processed. Workers
		// that take one at the same time name it themselves.
		for ev := range p.queue {
			p.dropped(ev)
		}
		return left, ctx.Err()
	}
}

// drained reports the result of a shutdown in which every worker returned.
// Workers release each slot before they return, so Depth is exact here: it
// is zero unless the Start context stopped them early.
func (p *Pipeline) drained() (left int, err error) {
	left = p.Depth()
	if left > 0 {
		err = fmt.Errorf("workers stopped before the pipeline drained: %w", context.Cause(p.ctx))
	}
	p.cancel()

	if err != nil {
		p.log.Warn("event pipeline not drained", "left", left, "error", err)
		return left, err
	}
	p.log.Info("event pipeline drained")
	return 0, nil
}

// Depth returns the number of events held now: queued, or being processed.
// After a timed-out Shutdown it keeps counting the abandoned events.
func (p *Pipeline) Depth() int { return len(p.slots) }

// Capacity returns the maximum number of events the pipeline holds, which is
// Config.Size after defaults.
func (p *Pipeline) Capacity() int { return cap(p.slots) }

// work takes events from the queue until the queue is closed and empty, or
// the processing context is cancelled.
func (p *Pipeline) work() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case ev, ok := <-p.queue:
			if !ok {
				return
			}
			// select picks at random when both cases are ready, so check
			// again. An abandoned event keeps its slot, which keeps it in
			// the left count that Shutdown returns.
			if p.ctx.Err() != nil {
				p.dropped(ev)
				return
			}
			p.process(ev)
		}
	}
}

// dropped logs an accepted event that will never be processed.
func (p *Pipeline) dropped(ev model.Event) {
	p.log.Warn("event dropped unprocessed", "event_id", ev.ID, "namespace", ev.Namespace)
}

// Accepting reports whether Enqueue may accept events: the workers are
// started and Shutdown was not called.
func (p *Pipeline) Accepting() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.started && !p.closed
}

// process runs the processor on ev and then releases ev's slot. It recovers
// a panic, so one bad event neither stops a worker nor leaks a slot.
func (p *Pipeline) process(ev model.Event) {
	defer func() { <-p.slots }()
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("event processing panicked",
				slog.String("event_id", ev.ID),
				slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
		}
	}()

	p.proc.Process(p.ctx, ev)
}
