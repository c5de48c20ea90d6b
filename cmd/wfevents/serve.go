package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/sim"
	"github.com/wfevents/wfevents/workers"
)

// readTimeout bounds reading one request, body included. A 2 MiB body takes
// under a second at 20 Mbit/s, so the bound only stops stalled senders.
const readTimeout = 30 * time.Second

// httpShutdownTimeout bounds the wait for requests in flight at exit.
const httpShutdownTimeout = 5 * time.Second

// serveOptions are the flags of "wfevents serve".
type serveOptions struct {
	addr               string
	fixturesDir        string
	maxBodyBytes       int64
	pipelineSize       int
	workerCount        int
	instanceID         string
	drainTimeout       time.Duration
	syncTimeout        time.Duration
	logLevel           slog.Level
	logFormat          string
	asyncDispatch      bool
	dispatchTimeout    time.Duration
	kubeconfig         string
	metricsByNamespace bool
	reviewTTL          time.Duration
	reviewSize         int
	eventQueueDir      string
	record             string
	recordMaxSize      int
	recordMaxBackups   int
}

func parseServeFlags(args []string, stderr io.Writer) (serveOptions, error) {
	var opts serveOptions
	flags := flag.NewFlagSet("wfevents serve", flag.ContinueOnError)
	flags.SetOutput(stderr)

	flags.StringVar(&opts.addr, "addr", "127.0.0.1:2746", "`address` to listen on, host:port")
	flags.BoolVar(&opts.metricsByNamespace, "metrics-namespace-label", false, "label event and Workflow counters in /metrics with the event's namespace; each namespace adds series")
	flags.StringVar(&opts.kubeconfig, "kubeconfig", "", "kubeconfig `file` of the cluster to serve; without it, the in-cluster configuration inside a pod, else the embedded cluster")
	flags.DurationVar(&opts.reviewTTL, "review-cache-ttl", kube.DefaultReviewCacheTTL, "how long TokenReview and SubjectAccessReview results are reused (cluster mode)")
	flags.IntVar(&opts.reviewSize, "review-cache-size", kube.DefaultReviewCacheSize, "`entries` kept in each review cache (cluster mode)")
	flags.StringVar(&opts.fixturesDir, "fixtures", "", "`directory` seeding the embedded cluster: cluster/*.yaml and tokens.csv (default: the fixtures built into the binary)")
	flags.Int64Var(&opts.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest event body accepted, in `bytes`; larger bodies get 413")
	flags.IntVar(&opts.pipelineSize, "event-pipeline-size", workers.DefaultSize, "events held at once, queued or being processed; the next gets 503")
	flags.IntVar(&opts.pipelineSize, "event-operation-queue-size", workers.DefaultSize, "alias of --event-pipeline-size, Argo's name; when both are given, the last wins")
	flags.BoolVar(&opts.asyncDispatch, "event-async-dispatch", true, "answer at once and create Workflows in the background; false makes each request wait for its Workflows and list them, Argo's synchronous mode")
	flags.DurationVar(&opts.dispatchTimeout, "event-dispatch-timeout", server.DefaultSyncTimeout, "with --event-async-dispatch=false, how long a request may wait for its Workflows")
	flags.IntVar(&opts.workerCount, "event-worker-count", workers.DefaultWorkers, "workers that process events")
	flags.StringVar(&opts.eventQueueDir, "event-queue-dir", "", "`directory` of the durable event queue: each event is written there with fsync before its 200, and a restart, even after a crash, processes the events left there before accepting new ones; empty keeps events in memory only")
	flags.StringVar(&opts.instanceID, "instance-id", "", "use only resources labelled workflows.argoproj.io/controller-instanceid=`id`, and label created Workflows with it")
	flags.DurationVar(&opts.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long to wait for queued events to finish; events left after it are dropped and logged, or with --event-queue-dir kept for the next start")
	flags.DurationVar(&opts.drainTimeout, "shutdown-timeout", 30*time.Second, "alias of --drain-timeout; when both are given, the last wins")
	flags.DurationVar(&opts.syncTimeout, "sync-timeout", time.Minute, "how long to wait at start for the template caches to sync")
	flags.TextVar(&opts.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	flags.StringVar(&opts.logFormat, "log-format", "text", "log `format`: text or json")
	flags.StringVar(&opts.record, "record", "", "append every request the server receives to `file`, a recorded stream of JSON Lines, with credentials redacted. Empty means no recording")
	flags.IntVar(&opts.recordMaxSize, "record-max-size", 100, "with --record, the size in `MiB` at which the file is renamed to a timestamped backup and a new one started")
	flags.IntVar(&opts.recordMaxBackups, "record-max-backups", 5, "with --record, how many backups of the file to keep, or 0 to keep all")

	if err := parseFlags(flags, args, stderr, ""); err != nil {
		return opts, err
	}
	err := opts.validate()
	if err == nil {
		err = checkRecordFlags(flags, opts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wfevents serve: %v\n", err)
		return opts, errUsage
	}
	return opts, nil
}

// checkRecordFlags rejects a --record-* flag given without --record, which
// would otherwise be silently ignored.
func checkRecordFlags(flags *flag.FlagSet, opts serveOptions) error {
	if opts.record != "" {
		return nil
	}
	var orphan string
	flags.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "record-") {
			orphan = f.Name
		}
	})
	if orphan != "" {
		return fmt.Errorf("invalid --%s without --record: name the recording file with --record FILE", orphan)
	}
	return nil
}

// minRecordMaxSize returns the smallest --record-max-size, in MiB, that
// holds a line whose body is at the body limit. With a binary body, such a
// line takes less than twice the limit, because the body is written in
// base64 (4/3 of its size) and the headers take about 64 KiB at most. A
// text body full of characters that JSON escapes can take more, and its
// line then fails to be written.
func minRecordMaxSize(maxBodyBytes int64) int64 {
	const mebibyte = 1 << 20
	return (2*maxBodyBytes + mebibyte - 1) / mebibyte
}

// validate checks the values that the flag package cannot, naming the flag.
func (opts serveOptions) validate() error {
	switch {
	case opts.logFormat != "text" && opts.logFormat != "json":
		return fmt.Errorf("invalid --log-format %q: use text or json", opts.logFormat)
	case opts.maxBodyBytes <= 0:
		return fmt.Errorf("invalid --max-body-bytes %d: must be positive", opts.maxBodyBytes)
	case opts.pipelineSize <= 0:
		return fmt.Errorf("invalid --event-pipeline-size %d: must be positive", opts.pipelineSize)
	case opts.workerCount <= 0:
		return fmt.Errorf("invalid --event-worker-count %d: must be positive", opts.workerCount)
	case opts.dispatchTimeout <= 0:
		return fmt.Errorf("invalid --event-dispatch-timeout %s: must be positive", opts.dispatchTimeout)
	case opts.drainTimeout <= 0:
		return fmt.Errorf("invalid --drain-timeout %s: must be positive", opts.drainTimeout)
	case opts.syncTimeout <= 0:
		return fmt.Errorf("invalid --sync-timeout %s: must be positive", opts.syncTimeout)
	case opts.reviewTTL <= 0:
		return fmt.Errorf("invalid --review-cache-ttl %s: must be positive", opts.reviewTTL)
	case opts.reviewSize <= 0:
		return fmt.Errorf("invalid --review-cache-size %d: must be positive", opts.reviewSize)
	case opts.eventQueueDir != "" && !opts.asyncDispatch:
		return fmt.Errorf("invalid --event-queue-dir %q with --event-async-dispatch=false: synchronous dispatch responds with the created Workflows and queues nothing, so drop one of the two", opts.eventQueueDir)
	case opts.recordMaxSize <= 0:
		return fmt.Errorf("invalid --record-max-size %d: must be positive, in MiB", opts.recordMaxSize)
	case int64(opts.recordMaxSize) < minRecordMaxSize(opts.maxBodyBytes):
		return fmt.Errorf("invalid --record-max-size %d MiB: a file must hold a request whose body is at --max-body-bytes %d, so use at least %d MiB", opts.recordMaxSize, opts.maxBodyBytes, minRecordMaxSize(opts.maxBodyBytes))
	case opts.recordMaxBackups < 0:
		return fmt.Errorf("invalid --record-max-backups %d: must not be negative, and 0 keeps all backups", opts.recordMaxBackups)
	}
	return nil
}

func newLogger(opts serveOptions, w io.Writer) *slog.Logger {
	handlerOptions := &slog.HandlerOptions{Level: opts.logLevel}
	if opts.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, handlerOptions))
	}
	return slog.New(slog.NewTextHandler(w, handlerOptions))
}

// runServe starts the server on the embedded cluster and runs until ctx is
// done, then drains.
func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	opts, err := parseServeFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(opts, stderr)

	if installProcessLogger != nil {
		installProcessLogger(logger)
	}

	// Open the recording first, so a wrong path fails before the caches
	// sync.
	serverMetrics := metrics.New(metrics.Config{NamespaceLabel: opts.metricsByNamespace})
	var recorder *sim.Recorder
	if opts.record != "" {
		recorder, err = openRecorder(opts, logger, serverMetrics)
		if err != nil {
			return err
		}
		// The recorder is closed at shutdown, or here on an early return.
		defer func() { closeRecorder(recorder, logger) }()
	}

	// Assemble the components for the mode and wait for the template caches.
	cfg := app.Config{
		MaxBodyBytes: opts.maxBodyBytes,
		PipelineSize: opts.pipelineSize,
		WorkerCount:  opts.workerCount,
		InstanceID:   opts.instanceID,
		Logger:       logger,
		Metrics:      serverMetrics,
		SyncDispatch: !opts.asyncDispatch,
		// A long-running embedded server must not keep every API call.
		DiscardFakeActions: true,
		SyncTimeout:        opts.dispatchTimeout,
		EventQueueDir:      opts.eventQueueDir,
	}
	running, mode, err := buildApp(cfg, opts)
	if err != nil {
		return err
	}
	defer running.Stop()
	syncCtx, cancelSync := context.WithTimeout(ctx, opts.syncTimeout)
	defer cancelSync()
	if !running.Start(syncCtx) {
		return fmt.Errorf("template caches did not sync within %s: check that the Argo CRDs are installed and the server may list and watch templates, bindings and the Secret %s, or raise --sync-timeout", opts.syncTimeout, model.WebhookClientsSecret)
	}
	logger.Info("caches synced", "mode", mode, "failing_expressions", len(running.Catalog.Failing()))

	// Listen before serving, so a busy port fails at start.
	listener, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w: choose another address with --addr", opts.addr, err)
	}
	handler := running.Handler
	if recorder != nil {
		handler = recorder.Wrap(handler)
	}
	// The timeouts bound what a slow or stalled client can hold: a request
	// must arrive whole within readTimeout, and an idle connection closes.
	httpServer := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Webhook senders send a few KiB of headers; 64 KiB leaves room
		// for large tokens and bounds what a client can make the server
		// hold before the handler runs.
		MaxHeaderBytes: 64 << 10,
		ReadTimeout:    readTimeout,
		IdleTimeout:    2 * time.Minute,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(listener) }()
	logger.Info("listening", "addr", listener.Addr().String(), "mode", mode,
		"event_pipeline_size", opts.pipelineSize, "event_worker_count", opts.workerCount,
		"max_body_bytes", opts.maxBodyBytes, "event_async_dispatch", opts.asyncDispatch, "instance_id", opts.instanceID,
		"event_queue_dir", opts.eventQueueDir, "record", opts.record)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", opts.addr, err)
	}

	// Stop intake first, so new events get 503 while the queue drains, then
	// close the listener and wait for requests in flight.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), opts.drainTimeout)
	defer cancelDrain()
	left, drainErr := running.Pipeline.Shutdown(drainCtx)

	// Requests still in flight only get a 503 by now, so a client that
	// stalls its request must not hold the exit for long.
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancelHTTP()
	if err := httpServer.Shutdown(httpCtx); err != nil {
		logger.Warn("closing connections that did not finish", "timeout", httpShutdownTimeout.String(), "error", err)
		_ = httpServer.Close()
	}
	// Handlers cut off by Close may still run, and what they record
	// after this is dropped and counted.
	closeRecorder(recorder, logger)
	recorder = nil
	logger.Info("stopped", "events_left", left)
	// A durable queue keeps the events left for the next start, so a drain
	// that ran out of time lost nothing.
	if drainErr != nil && opts.eventQueueDir == "" {
		return fmt.Errorf("drain events: %d left unprocessed: %w", left, drainErr)
	}
	return nil
}

// openRecorder opens the file of --record and starts recording to it.
func openRecorder(opts serveOptions, logger *slog.Logger, m *metrics.Metrics) (*sim.Recorder, error) {
	output, err := sim.OpenRotatingFile(opts.record, opts.recordMaxSize, opts.recordMaxBackups)
	if err != nil {
		return nil, fmt.Errorf("invalid --record %q: %w: choose a file in an existing, writable directory", opts.record, err)
	}
	recorder, err := sim.NewRecorder(sim.RecorderConfig{
		Output:       output,
		MaxBodyBytes: opts.maxBodyBytes,
		Logger:       logger,
		Metrics:      m,
	})
	if err != nil {
		_ = output.Close()
		return nil, err
	}
	logger.Info("recording requests", "file", opts.record, "max_size_mib", opts.recordMaxSize, "max_backups", opts.recordMaxBackups)
	return recorder, nil
}

// closeRecorder writes what recorder still buffers, closes its file and logs
// a failure. It does nothing for a nil recorder.
func closeRecorder(recorder *sim.Recorder, logger *slog.Logger) {
	if recorder == nil {
		return
	}
	if err := recorder.Close(); err != nil {
		logger.Error("recording not closed", "error", err)
	}
}

// buildApp picks the mode: the cluster of --kubeconfig, the in-cluster
// configuration when running in a pod, or else the embedded cluster.
func buildApp(cfg app.Config, opts serveOptions) (*app.App, string, error) {
	review := kube.ReviewConfig{CacheTTL: opts.reviewTTL, CacheSize: opts.reviewSize}

	if opts.kubeconfig != "" {
		restConfig, err := clientcmd.BuildConfigFromFlags("", opts.kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("load kubeconfig %s: %w", opts.kubeconfig, err)
		}
		running, err := app.NewCluster(cfg, app.ClusterConfig{REST: restConfig, Review: review})
		return running, "cluster " + restConfig.Host, err
	}

	restConfig, err := rest.InClusterConfig()
	if err == nil {
		running, err := app.NewCluster(cfg, app.ClusterConfig{REST: restConfig, Review: review})
		return running, "in-cluster " + restConfig.Host, err
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, "", fmt.Errorf("load in-cluster configuration: %w", err)
	}

	seed, err := loadFixtures(opts.fixturesDir)
	if err != nil {
		return nil, "", err
	}
	running, err := app.NewEmbedded(cfg, seed)
	return running, "embedded, fixtures " + fixturesSource(opts.fixturesDir), err
}

func fixturesSource(dir string) string {
	if dir == "" {
		return "built-in"
	}
	return dir
}
