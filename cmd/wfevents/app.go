package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

// appConfig configures the embedded-mode assembly.
type appConfig struct {
	Seed         *fixtures.Set
	MaxBodyBytes int64
	PipelineSize int
	WorkerCount  int
	InstanceID   string
	Logger       *slog.Logger

	// NewEventID returns event IDs. Nil means random UUIDs; tests set it
	// to get stable IDs.
	NewEventID func() string
}

// app is wfevents wired on an embedded cluster: a fake dynamic client seeded
// from fixtures, the template catalog fed by informers, the pipeline with its
// workers, and the HTTP handler.
//
// TODO: move this assembly to a package of its own once replay and load
// tests need an in-process server too.
type app struct {
	cluster  *dynamicfake.FakeDynamicClient
	catalog  *matcher.Catalog
	watcher  *kube.Watcher
	pipeline *workers.Pipeline
	handler  http.Handler
	cancel   context.CancelFunc
}

func newApp(cfg appConfig) (*app, error) {
	objects := make([]runtime.Object, len(cfg.Seed.Objects))
	for i, obj := range cfg.Seed.Objects {
		objects[i] = obj.DeepCopy()
	}
	cluster := kube.NewFakeDynamicClient(objects...)
	catalog := matcher.NewCatalog(cfg.InstanceID, cfg.Logger)

	watcher, err := kube.NewWatcher(cluster, "", 0, catalog, cfg.Logger)
	if err != nil {
		return nil, err
	}

	client := kube.NewClient(cluster)
	dispatcher := &workers.Dispatcher{
		Templates:  catalog,
		Creator:    client,
		InstanceID: cfg.InstanceID,
		Logger:     cfg.Logger,
	}
	pipeline, err := workers.NewPipeline(workers.Config{
		Size:    cfg.PipelineSize,
		Workers: cfg.WorkerCount,
		Logger:  cfg.Logger,
	}, dispatcher)
	if err != nil {
		return nil, fmt.Errorf("configure event pipeline: %w", err)
	}

	handler, err := server.New(server.Config{
		Authenticator: cfg.Seed.Tokens,
		Queue:         pipeline,
		Workflows:     client,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Ready:         watcher.HasSynced,
		Logger:        cfg.Logger,
		NewEventID:    cfg.NewEventID,
	})
	if err != nil {
		return nil, err
	}

	return &app{
		cluster:  cluster,
		catalog:  catalog,
		watcher:  watcher,
		pipeline: pipeline,
		handler:  handler,
	}, nil
}

// start starts the informers and the workers, and reports whether the
// template caches synced before syncCtx was done.
func (a *app) start(syncCtx context.Context) bool {
	// The informers and workers run on a context of their own, never a
	// request's, until stop.
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel

	a.watcher.Start(ctx)
	a.pipeline.Start(ctx)
	return a.watcher.WaitForSync(syncCtx)
}

// stop stops the informers and cancels whatever the workers still run.
func (a *app) stop() {
	if a.cancel != nil {
		a.cancel()
	}
}
