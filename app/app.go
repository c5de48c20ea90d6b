// Package app assembles wfevents from its parts: the template catalog fed by
// informers, the webhook clients, the pipeline with its workers and the HTTP
// handler, over an embedded cluster seeded from fixtures or a real API
// server. cmd/wfevents serves it, and tests and tools run it in-process.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

// Config configures the assembly, in embedded or in cluster mode.
type Config struct {
	MaxBodyBytes int64
	PipelineSize int
	WorkerCount  int
	InstanceID   string
	Logger       *slog.Logger

	// SyncDispatch makes each request wait for its Workflows, Argo's
	// --event-async-dispatch=false, bounded by SyncTimeout.
	SyncDispatch bool
	SyncTimeout  time.Duration

	// Metrics records what the server does. Nil records nothing and
	// serves no /metrics.
	Metrics *metrics.Metrics

	// NewEventID returns event IDs. Nil means random UUIDs, and tests set
	// it to get stable IDs.
	NewEventID func() string

	// EventQueueDir, when set, makes the event queue durable: every event
	// is written to a bbolt file in this directory before the request gets
	// its 200, and the events an earlier run left there are processed
	// before new ones are accepted. Empty keeps events in memory only. The
	// synchronous mode queues nothing, so it only replays what an earlier
	// run left.
	EventQueueDir string

	// DiscardFakeActions makes the embedded cluster forget the API calls it
	// records, once a minute. client-go's fake keeps a copy of every call
	// for tests to inspect, which a long-running embedded server would
	// otherwise accumulate without bound.
	DiscardFakeActions bool

	// Authenticator, when set, replaces the fixtures' token table in the
	// embedded mode, as replay does to act as recorded callers. The table
	// still decides which namespaces a caller may use.
	Authenticator server.Authenticator

	// Processed, when set, is called by a worker after each event with its
	// outcomes, before the event leaves the pipeline. It must not block.
	Processed func(ev model.Event, outcomes []workers.Outcome)
}

// ClusterConfig is the connection to a real API server and its review caches.
type ClusterConfig struct {
	REST   *rest.Config
	Review kube.ReviewConfig
}

// App is wfevents wired together. Its exported fields are for callers that
// drive or inspect it, such as tests, and must not be replaced.
type App struct {
	// Handler serves the HTTP API.
	Handler http.Handler

	// Pipeline holds the events between admission and the workers.
	Pipeline *workers.Pipeline

	// Catalog holds the compiled templates and bindings.
	Catalog *matcher.Catalog

	// Fake is the embedded cluster, which records every action. It is nil
	// in cluster mode.
	Fake *dynamicfake.FakeDynamicClient

	// Webhooks holds the webhook clients of every namespace.
	Webhooks *kube.WebhookClientStore

	watcher  *kube.Watcher
	recorder *kube.Recorder
	store    *workers.BoltStore // nil without Config.EventQueueDir
	logger   *slog.Logger
	cancel   context.CancelFunc

	discardFakeActions bool
}

// components are the parts that differ between the embedded and the cluster mode.
type components struct {
	dynamic  dynamic.Interface
	client   *kube.Client
	authn    server.Authenticator
	authz    model.Authorizer
	recorder *kube.Recorder // nil when failures are only logged
	fake     *dynamicfake.FakeDynamicClient
}

// NewEmbedded builds wfevents on a fake dynamic client seeded from the
// fixtures, with the fixtures' token table for authentication.
func NewEmbedded(cfg Config, seed *fixtures.Set) (*App, error) {
	objects := make([]runtime.Object, len(seed.Objects))
	for i, obj := range seed.Objects {
		objects[i] = obj.DeepCopy()
	}
	fake := kube.NewFakeDynamicClient(objects...)
	var authn server.Authenticator = seed.Tokens
	if cfg.Authenticator != nil {
		authn = cfg.Authenticator
	}
	return newApp(cfg, components{
		dynamic: fake,
		client:  kube.NewClient(fake),
		authn:   authn,
		authz:   seed.Tokens,
		fake:    fake,
	})
}

// NewCluster builds wfevents on a real API server: TokenReview and
// SubjectAccessReview for access, impersonation for creating Workflows, and
// Warning Events on templates for failures.
func NewCluster(cfg Config, cluster ClusterConfig) (*App, error) {
	// The user agent names wfevents as the field manager of what it writes.
	cluster.REST = rest.CopyConfig(cluster.REST)
	cluster.REST.UserAgent = "wfevents"

	dyn, err := dynamic.NewForConfig(cluster.REST)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client for %s: %w", cluster.REST.Host, err)
	}
	typed, err := kubernetes.NewForConfig(cluster.REST)
	if err != nil {
		return nil, fmt.Errorf("build client for %s: %w", cluster.REST.Host, err)
	}
	client, err := kube.NewImpersonatingClient(cluster.REST)
	if err != nil {
		return nil, err
	}
	// Template reads are permission checks like the reviews, so they are
	// reused for as long.
	ttl, size := cluster.Review.CacheTTL, cluster.Review.CacheSize
	if ttl == 0 {
		ttl = kube.DefaultReviewCacheTTL
	}
	if size == 0 {
		size = kube.DefaultReviewCacheSize
	}
	client.CacheTemplateReads(ttl, size)
	reviewer := kube.NewReviewer(typed, cluster.Review)
	registerReviewMetrics(cfg.Metrics, reviewer)
	return newApp(cfg, components{
		dynamic:  dyn,
		client:   client,
		authn:    reviewer,
		authz:    reviewer,
		recorder: kube.NewRecorder(typed, "wfevents", cfg.Logger),
	})
}

func newApp(cfg Config, parts components) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	catalog := matcher.NewCatalog(cfg.InstanceID, cfg.Logger)

	// A nil *kube.Recorder must not become a non-nil interface value.
	var compileReporter kube.CompileErrorReporter
	var failureReporter workers.FailureReporter
	if parts.recorder != nil {
		compileReporter, failureReporter = parts.recorder, parts.recorder
	}

	watcher, err := kube.NewWatcher(parts.dynamic, kube.WatcherConfig{
		Sink:     catalog,
		Reporter: compileReporter,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	// Webhook senders without an Authorization header are checked against
	// the webhook-clients Secret of the namespace they send to.
	webhooks, err := kube.NewWebhookClientStore(parts.dynamic, kube.WebhookClientStoreConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}

	dispatcher := &workers.Dispatcher{
		Templates:  catalog,
		Cluster:    parts.client,
		Authorizer: parts.authz,
		Reporter:   failureReporter,
		InstanceID: cfg.InstanceID,
		Logger:     cfg.Logger,
		Metrics:    cfg.Metrics,
	}
	pipelineConfig := workers.Config{
		Size:    cfg.PipelineSize,
		Workers: cfg.WorkerCount,
		Logger:  cfg.Logger,
		Metrics: cfg.Metrics,
	}
	var store *workers.BoltStore
	if cfg.EventQueueDir != "" {
		store, err = workers.OpenStore(cfg.EventQueueDir, cfg.Logger)
		if err != nil {
			return nil, err
		}
		pipelineConfig.Store = store
	}
	var processor workers.Processor = dispatcher
	if cfg.Processed != nil {
		processor = workers.ProcessorFunc(func(ctx context.Context, ev model.Event) {
			cfg.Processed(ev, dispatcher.Run(ctx, ev))
		})
	}
	pipeline, err := workers.NewPipeline(pipelineConfig, processor)
	if err != nil {
		closeStore(store, cfg.Logger)
		return nil, fmt.Errorf("configure event pipeline: %w", err)
	}

	handler, err := server.New(server.Config{
		Dispatcher:     dispatcher,
		SyncDispatch:   cfg.SyncDispatch,
		RenderWorkflow: func(wf model.Workflow) any { return kube.WorkflowToObject(wf).Object },
		Metrics:        cfg.Metrics,
		SyncTimeout:    cfg.SyncTimeout,
		SyncLimit:      cfg.PipelineSize,
		Authenticator:  parts.authn,
		Authorizer:     parts.authz,
		Queue:          pipeline,
		Workflows:      parts.client,
		WebhookClients: webhooks,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Ready:          func() bool { return watcher.HasSynced() && webhooks.HasSynced() && pipeline.Accepting() },
		Logger:         cfg.Logger,
		NewEventID:     cfg.NewEventID,
	})
	if err != nil {
		closeStore(store, cfg.Logger)
		return nil, err
	}

	cfg.Metrics.GaugeFunc("wfevents_pipeline_depth", "Events held: queued or being processed.",
		func() float64 { return float64(pipeline.Depth()) })
	cfg.Metrics.GaugeFunc("wfevents_pipeline_capacity", "Events the pipeline holds at most, --event-pipeline-size.",
		func() float64 { return float64(pipeline.Capacity()) })
	cfg.Metrics.GaugeFunc("wfevents_expressions_failing", "Templates and bindings whose current version does not compile.",
		func() float64 { return float64(len(catalog.Failing())) })

	return &App{
		Fake:     parts.fake,
		Catalog:  catalog,
		watcher:  watcher,
		Webhooks: webhooks,
		Pipeline: pipeline,
		Handler:  handler,
		recorder: parts.recorder,
		store:    store,
		logger:   cfg.Logger,

		discardFakeActions: cfg.DiscardFakeActions,
	}, nil
}

// Start starts the informers, waits until the template and webhook-client
// caches have synced or syncCtx is done, and reports whether they synced.
// It starts the workers only once they have, because an event processed
// against a partial catalog misses templates, and the first events a
// durable queue replays are processed at once.
func (a *App) Start(syncCtx context.Context) bool {
	// The informers and workers run on a context of their own, never a
	// request's, until stop.
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel

	a.watcher.Start(ctx)
	a.Webhooks.Start(ctx)
	if !a.watcher.WaitForSync(syncCtx) || !a.Webhooks.WaitForSync(syncCtx) {
		return false
	}
	a.Pipeline.Start(ctx)
	if a.Fake != nil && a.discardFakeActions {
		go a.discardActions(ctx)
	}
	return true
}

// discardActions clears the embedded cluster's record of API calls once a
// minute until ctx is done.
func (a *App) discardActions(ctx context.Context) {
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			a.Fake.ClearActions()
		}
	}
}

// Stop stops the informers, cancels whatever the workers still run, flushes
// the Event recorder and closes the durable event queue. Events still in
// the queue stay there for the next start.
func (a *App) Stop() {
	if a.cancel != nil {
		a.cancel()
	}
	if a.recorder != nil {
		a.recorder.Shutdown()
	}
	closeStore(a.store, a.logger)
	a.store = nil
}

// closeStore closes store unless it is nil, and logs a failure, after which
// the file may stay locked until the process exits.
func closeStore(store *workers.BoltStore, logger *slog.Logger) {
	if store == nil {
		return
	}
	if err := store.Close(); err != nil {
		logger.Error("event queue not closed", "error", err)
	}
}

// registerReviewMetrics exposes the review caches' hit and miss counts.
func registerReviewMetrics(m *metrics.Metrics, reviewer *kube.Reviewer) {
	const name = "wfevents_review_cache_requests_total"
	const help = "TokenReview and SubjectAccessReview cache lookups, by review and result."
	counts := map[[2]string]func(kube.ReviewStats) uint64{
		{"token", "hit"}:   func(s kube.ReviewStats) uint64 { return s.TokenHits },
		{"token", "miss"}:  func(s kube.ReviewStats) uint64 { return s.TokenMisses },
		{"access", "hit"}:  func(s kube.ReviewStats) uint64 { return s.AccessHits },
		{"access", "miss"}: func(s kube.ReviewStats) uint64 { return s.AccessMisses },
	}
	for labels, count := range counts {
		m.CounterFunc(name, help, map[string]string{"review": labels[0], "result": labels[1]},
			func() float64 { return float64(count(reviewer.Stats())) })
	}
}
