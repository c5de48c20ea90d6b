package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
)

// Handler names for ServerConfig.Handler.
const (
	// HandlerAdmission serves wfevents itself.
	HandlerAdmission = "admission"

	// HandlerNoop responds to every request with 200 and {} and does
	// nothing else. It is the baseline that the admission path is compared with.
	HandlerNoop = "noop"
)

// ServerConfig configures the in-process server. The zero value serves
// wfevents with its default pipeline size and worker count.
type ServerConfig struct {
	// PipelineSize is --event-pipeline-size. Zero means the server's default.
	PipelineSize int

	// WorkerCount is --event-worker-count. Zero means the server's default.
	WorkerCount int

	// APILatency delays every Workflow create of the embedded cluster, in
	// the worker that creates it, to stand in for a real API server.
	APILatency time.Duration

	// DiscardWorkflows makes the embedded cluster respond to each Workflow
	// create without keeping the Workflow. A real API server keeps them in
	// its own memory, so this leaves the process with wfevents' memory
	// alone. The limit scenario cannot count Workflows then.
	DiscardWorkflows bool

	// Handler is HandlerAdmission or HandlerNoop. Empty means
	// HandlerAdmission.
	Handler string

	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
}

// The HTTP server's timeouts are those of "wfevents serve", so that the
// in-process server measures the same connection handling.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// closeTimeout bounds each step of Server.Close.
const closeTimeout = 5 * time.Second

// Server is wfevents running in this process on the embedded cluster seeded
// from the built-in fixtures, served over HTTP on 127.0.0.1 on a free port.
// Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string

	cfg    ServerConfig
	app    *app.App // nil for HandlerNoop
	http   *http.Server
	served chan error
	gate   gate
}

// StartServer starts the server and returns once its template caches have
// synced and it is listening.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Handler == "" {
		cfg.Handler = HandlerAdmission
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, served: make(chan error, 1)}

	// Build the handler: wfevents on the embedded cluster, or the no-op.
	var handler http.Handler
	switch cfg.Handler {
	case HandlerAdmission:
		running, err := startApp(ctx, cfg, &s.gate)
		if err != nil {
			return nil, err
		}
		s.app = running
		handler = running.Handler
	case HandlerNoop:
		handler = http.HandlerFunc(serveNoop)
	default:
		return nil, fmt.Errorf("invalid handler %q: use %s or %s", cfg.Handler, HandlerAdmission, HandlerNoop)
	}

	// Listen on loopback only: a load run never opens a port to others.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.stopApp()
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s.URL = "http://" + listener.Addr().String()
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() { s.served <- s.http.Serve(listener) }()
	return s, nil
}

// startApp builds wfevents on the embedded cluster with the create delay
// installed, and waits for its caches.
func startApp(ctx context.Context, cfg ServerConfig, g *gate) (*app.App, error) {
	seed, err := fixtures.Load(fixtures.Embedded())
	if err != nil {
		return nil, fmt.Errorf("load the built-in fixtures: %w", err)
	}
	running, err := app.NewEmbedded(app.Config{
		PipelineSize: cfg.PipelineSize,
		WorkerCount:  cfg.WorkerCount,
		Logger:       cfg.Logger,
		// Metrics are recorded as "wfevents serve" records them, because
		// they are part of the admission path's cost.
		Metrics: metrics.New(metrics.Config{}),
	}, seed)
	if err != nil {
		return nil, fmt.Errorf("build the in-process server: %w", err)
	}
	running.Fake.PrependReactor("create", "workflows", delayCreate(running.Fake, g, cfg.APILatency, cfg.DiscardWorkflows))

	syncCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !running.Start(syncCtx) {
		running.Stop()
		return nil, errors.New("start the in-process server: template caches did not sync within 10s")
	}
	return running, nil
}

// delayCreate returns a reactor that holds each Workflow create while the
// gate is closed, then waits latency, and then lets the fake store it, or
// with discard returns the Workflow as created without storing it.
//
// NOTE: client-go's fake holds its own mutex while it runs the reactors, so
// a reactor that sleeps with it held would make every worker wait for the
// one in the reactor. The reactor releases that mutex while it waits and
// takes it back before returning, so the workers wait in parallel as they
// would on a real API server. It runs in the goroutine that holds the mutex.
func delayCreate(fake *dynamicfake.FakeDynamicClient, g *gate, latency time.Duration, discard bool) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		fake.Unlock()
		defer fake.Lock()

		g.wait()
		if latency > 0 {
			time.Sleep(latency)
		}
		if create, ok := action.(k8stesting.CreateAction); ok && discard {
			return true, create.GetObject(), nil
		}
		return false, nil, nil
	}
}

// serveNoop is the baseline handler.
func serveNoop(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}\n"))
}

// HasPipeline reports whether s runs wfevents with its pipeline, rather
// than the no-op handler.
func (s *Server) HasPipeline() bool { return s.app != nil }

// HoldWorkers makes every Workflow create wait until ReleaseWorkers, so the
// workers stop at their first create and keep their events.
func (s *Server) HoldWorkers() { s.gate.close() }

// ReleaseWorkers lets the held creates, and all later ones, go on.
func (s *Server) ReleaseWorkers() { s.gate.open() }

// Depth returns the number of events the pipeline holds now.
func (s *Server) Depth() int {
	if s.app == nil {
		return 0
	}
	return s.app.Pipeline.Depth()
}

// Capacity returns the pipeline size.
func (s *Server) Capacity() int {
	if s.app == nil {
		return 0
	}
	return s.app.Pipeline.Capacity()
}

// WaitIdle waits until the pipeline holds no event, polling, or until ctx
// is done.
func (s *Server) WaitIdle(ctx context.Context) error {
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	for s.Depth() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the pipeline to drain timed out with %d events held: %w", s.Depth(), ctx.Err())
		case <-ticker.C:
		}
	}
	return nil
}

// ClearAPIRecord empties the embedded cluster's record of API calls. The
// fake keeps a copy of every call it served, which grows with every event.
func (s *Server) ClearAPIRecord() {
	if s.app != nil {
		s.app.Fake.ClearActions()
	}
}

// WorkflowsByEvent counts the Workflows stored in namespace by the event ID
// label they carry. Workflows without the label count under "".
func (s *Server) WorkflowsByEvent(ctx context.Context, namespace string) (map[string]int, error) {
	if s.app == nil {
		return nil, errors.New("list workflows: the no-op handler stores none")
	}
	list, err := s.app.Fake.Resource(kube.WorkflowsResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list workflows in namespace %q: %w", namespace, err)
	}
	counts := make(map[string]int)
	for _, item := range list.Items {
		counts[item.GetLabels()[model.LabelEventID]]++
	}
	return counts, nil
}

// Close stops intake, lets the held creates go on, drains the pipeline and
// stops the server, each step bounded by a few seconds.
func (s *Server) Close() error {
	s.ReleaseWorkers()

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("close the HTTP server at %s: %w", s.URL, err), s.http.Close())
	}
	if served := <-s.served; !errors.Is(served, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve on %s: %w", s.URL, served))
	}
	if s.app != nil {
		drainCtx, cancelDrain := context.WithTimeout(context.Background(), closeTimeout)
		defer cancelDrain()
		if left, drainErr := s.app.Pipeline.Shutdown(drainCtx); drainErr != nil {
			err = errors.Join(err, fmt.Errorf("drain the pipeline: %d events left: %w", left, drainErr))
		}
	}
	s.stopApp()
	return err
}

func (s *Server) stopApp() {
	if s.app != nil {
		s.app.Stop()
	}
}

// gate holds callers of wait while it is closed. The zero value is open.
type gate struct {
	mu      sync.Mutex
	blocked chan struct{} // nil while open
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = make(chan struct{})
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked != nil {
		close(g.blocked)
		g.blocked = nil
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	blocked := g.blocked
	g.mu.Unlock()
	if blocked != nil {
		<-blocked
	}
}
