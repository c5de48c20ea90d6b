package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/wfevents/wfevents/metrics"
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

	// Store, when set, makes the pipeline durable. Enqueue returns only
	// once the event is in Store, and a worker deletes the event once
	// Process returns. NewPipeline loads the events that an earlier run
	// left in Store, and the pipeline processes them before any new event.
	// Nil keeps events in memory only. The pipeline never closes Store.
	Store Store

	// Metrics counts recovered panics. Nil counts nothing.
	Metrics *metrics.Metrics
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
	metrics *metrics.Metrics
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

	// done is closed when every worker has returned and every deletion
	// they started has finished.
	done chan struct{}

	// deletions counts the goroutines that delete a processed event from
	// the Store and then release its slot.
	deletions sync.WaitGroup

	// store is Config.Store, nil when events are kept in memory only.
	store Store

	// backlog contains the stored events of an earlier run that did not
	// fit in the queue at construction, in receive order. The replay
	// goroutine that Start runs queues them as slots free up, and closes
	// replayDone when it returns. unqueued counts the backlog events not
	// queued yet.
	backlog    []model.Event
	unqueued   atomic.Int64
	replayDone chan struct{}

	// closing is closed by Shutdown, so the replay goroutine stops waiting
	// for a slot.
	closing chan struct{}

	// mu guards the fields below. Enqueue and the replay goroutine hold the
	// read lock while they send, so Shutdown cannot close queue under them.
	mu        sync.RWMutex
	started   bool
	closed    bool
	replaying bool            // backlog events remain unqueued
	ctx       context.Context // processing context, set by Start
	cancel    context.CancelFunc
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

	p := &Pipeline{
		proc:    proc,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		workers: cfg.Workers,
		slots:   make(chan struct{}, cfg.Size),
		queue:   make(chan model.Event, cfg.Size),
		errFull: &model.Error{
			Code:    model.CodeUnavailable,
			Message: fmt.Sprintf("event pipeline is full with %d events; retry later", cfg.Size),
			Err:     ErrFull,
		},
		done:       make(chan struct{}),
		store:      cfg.Store,
		replayDone: make(chan struct{}),
		closing:    make(chan struct{}),
	}
	if err := p.loadStored(); err != nil {
		return nil, err
	}
	return p, nil
}

// loadStored queues the events an earlier run left in the store, as many
// as fit, and keeps the rest as the backlog for Start to replay.
//
// NOTE: the backlog is held in memory. It is at most the pipeline size of
// the run that left it, because every stored event held a slot then.
func (p *Pipeline) loadStored() error {
	if p.store == nil {
		close(p.replayDone)
		return nil
	}
	stored, err := p.store.Pending()
	if err != nil {
		return fmt.Errorf("load the events left in the event queue: %w", err)
	}

	queued := min(len(stored), cap(p.queue))
	for _, ev := range stored[:queued] {
		p.slots <- struct{}{}
		p.queue <- ev
	}
	p.backlog = stored[queued:]
	p.unqueued.Store(int64(len(p.backlog)))
	p.replaying = len(p.backlog) > 0
	if !p.replaying {
		close(p.replayDone)
	}
	if len(stored) > 0 {
		p.log.Info("replaying events left in the event queue", "events", len(stored), "queued", queued, "backlog", len(p.backlog))
	}
	return nil
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
		// Workers start deletions, so every deletions.Add happens before
		// this Wait.
		wg.Wait()
		p.deletions.Wait()
		close(p.done)
	}()
	if p.replaying {
		go p.replay()
	}
	p.log.Info("event workers started", "workers", p.workers, "pipeline_size", cap(p.slots), "durable", p.store != nil)
}

// replay queues the backlog in order, each event as soon as a slot is
// free, then opens intake. It returns early when Shutdown is called or the
// processing context is cancelled, and the events it did not queue stay in
// the store.
func (p *Pipeline) replay() {
	defer close(p.replayDone)
	for _, ev := range p.backlog {
		select {
		case p.slots <- struct{}{}:
		case <-p.closing:
			return
		case <-p.ctx.Done():
			return
		}

		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			<-p.slots
			return
		}
		p.queue <- ev
		p.unqueued.Add(-1)
		p.mu.RUnlock()
	}

	p.mu.Lock()
	p.replaying = false
	p.backlog = nil
	p.mu.Unlock()
	p.log.Info("replayed the events left in the event queue; accepting new events")
}

// Enqueue adds ev to the pipeline and returns without waiting for it to be
// processed. It never waits for room. When the pipeline is full it returns a
// *model.Error with code CodeUnavailable that wraps [ErrFull], and after
// Shutdown it returns [ErrShuttingDown].
//
// With a Store, Enqueue takes a slot first, so a full pipeline rejects at
// once without writing, and then returns only once the event is stored. A
// failed write is a CodeUnavailable error that wraps the cause. While
// events from an earlier run remain to be replayed, Enqueue rejects every
// event as full, so the older events go first.
//
// Events enqueued before Start wait for the workers.
func (p *Pipeline) Enqueue(ev model.Event) error {
	// Shutdown waits for the read lock, so it waits for a write in
	// progress and the write's event is queued or rejected, never lost.
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrShuttingDown
	}
	if p.replaying {
		return p.errFull
	}

	select {
	case p.slots <- struct{}{}:
	default:
		return p.errFull
	}
	if p.store != nil {
		if err := p.store.Put(ev); err != nil {
			<-p.slots
			p.log.Error("event not stored in the event queue", "event_id", ev.ID, "namespace", ev.Namespace, "error", err)
			return &model.Error{Code: model.CodeUnavailable, Message: "event could not be stored; retry later", Err: err}
		}
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
//
// With a Store, the events left stay in it for the next run, and so do the
// events of an earlier run that were not replayed yet, which also count as
// left. Shutdown logs how many there are instead of each event as dropped.
//
// NOTE: Shutdown waits for Enqueue calls that are writing to the Store
// before it checks ctx, so a disk that stops responding delays it.
func (p *Pipeline) Shutdown(ctx context.Context) (left int, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, errShutdownCalled
	}
	p.closed = true
	close(p.closing)
	close(p.queue)
	started := p.started
	p.mu.Unlock()

	// Once closed is set, the replay goroutine queues nothing more and
	// returns at once, so unqueued stays fixed from here on.
	if started {
		<-p.replayDone
	}
	unqueued := int(p.unqueued.Load())

	if !started {
		left = p.Depth() + unqueued
		p.log.Info("event pipeline shut down before start", "left", left)
		p.reportStored(left)
		return left, nil
	}

	p.log.Info("draining event pipeline", "held", p.Depth(), "unqueued", unqueued)
	select {
	case <-p.done:
		left, err = p.drained()
		p.reportStored(left + unqueued)
		return left + unqueued, err
	case <-ctx.Done():
		// Count before cancelling, because a cancelled Process call returns
		// and releases its slot without having finished its work.
		left = p.Depth() + unqueued
		p.cancel()
		p.log.Warn("event pipeline shutdown timed out: raise the drain timeout to finish more events", "left", left, "error", ctx.Err())

		// Name every queued event that will never be processed. Workers
		// that take one at the same time name it themselves.
		for ev := range p.queue {
			p.dropped(ev)
		}
		p.reportStored(left)
		return left, ctx.Err()
	}
}

// reportStored logs how many events a shutdown left in the Store.
func (p *Pipeline) reportStored(left int) {
	if p.store != nil && left > 0 {
		p.log.Info("events left in the event queue for the next start", "left_on_disk", left)
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

// dropped logs an accepted event that will not be processed in this run.
// With a Store the next start processes it, so it is not lost.
func (p *Pipeline) dropped(ev model.Event) {
	if p.store != nil {
		p.log.Debug("event left in the event queue for the next start", "event_id", ev.ID, "namespace", ev.Namespace)
		return
	}
	p.log.Warn("event dropped unprocessed", "event_id", ev.ID, "namespace", ev.Namespace)
}

// CheckRoom returns the error Enqueue would return for a full pipeline when
// every slot is taken at this moment, else nil, so a caller can reject an
// event before reading it. Enqueue still decides, because a slot may be
// taken or freed right after.
func (p *Pipeline) CheckRoom() error {
	if len(p.slots) == cap(p.slots) {
		return p.errFull
	}
	return nil
}

// Accepting reports whether Enqueue may accept events: the workers are
// started, Shutdown was not called, and no event of an earlier run remains
// to be replayed.
func (p *Pipeline) Accepting() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.started && !p.closed && !p.replaying
}

// process runs the processor on ev and releases ev's slot. With a Store,
// a goroutine of its own deletes ev and then releases the slot. The worker
// then takes its next event without waiting for the disk, and concurrent
// deletions share a commit. Because the slot goes last, the Store never
// contains more unfinished events of this run than the pipeline size.
func (p *Pipeline) process(ev model.Event) {
	handOver := false
	defer func() {
		if !handOver {
			<-p.slots
		}
	}()

	p.run(ev)
	if p.store == nil {
		return
	}
	cancelled := p.ctx.Err() != nil
	handOver = true
	p.deletions.Go(func() {
		defer func() { <-p.slots }()
		p.finish(ev, cancelled)
	})
}

// finish deletes a processed event from the Store. An event whose Process
// call returned after the processing context was cancelled may be half
// done, so it stays in the Store and the next start processes it again.
func (p *Pipeline) finish(ev model.Event, cancelled bool) {
	if cancelled {
		p.log.Info("event processing cancelled; the event stays in the event queue for the next start", "event_id", ev.ID, "namespace", ev.Namespace)
		return
	}
	if err := p.store.Delete(ev); err != nil {
		p.log.Error("processed event not deleted from the event queue; the next start processes it again", "event_id", ev.ID, "namespace", ev.Namespace, "error", err)
	}
}

// run runs the processor on ev. It recovers a panic, so one bad event
// neither stops a worker nor leaks its slot. A Store then deletes the event
// like any processed one, because replaying it would panic again.
func (p *Pipeline) run(ev model.Event) {
	defer func() {
		if r := recover(); r != nil {
			p.metrics.WorkerPanicked()
			p.log.Error("event processing panicked",
				slog.String("event_id", ev.ID),
				slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
		}
	}()

	p.proc.Process(p.ctx, ev)
}
