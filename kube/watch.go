package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/wfevents/wfevents/model"
)

// TemplateSink receives every template version the informers see.
// *matcher.Catalog implements it.
type TemplateSink interface {
	Upsert(t model.Template) error
	Delete(ref model.ResourceRef)
}

// CompileErrorReporter receives each template version whose expressions do
// not compile. *Recorder implements it.
type CompileErrorReporter interface {
	ReportCompileError(t model.Template, err error)
}

// WatcherConfig configures a Watcher. Sink is required.
type WatcherConfig struct {
	Sink TemplateSink

	// Reporter, when set, receives compile errors, once per version.
	Reporter CompileErrorReporter

	// Namespace, when set, limits the WorkflowTemplates watched to one
	// namespace.
	Namespace string

	// Resync is the informers' resync period. Zero disables resyncs.
	Resync time.Duration

	// Logger receives unusable templates. Nil discards.
	Logger *slog.Logger
}

// Watcher feeds a TemplateSink from shared informers on WorkflowTemplates and
// ClusterWorkflowTemplates.
type Watcher struct {
	factory  dynamicinformer.DynamicSharedInformerFactory
	synced   []cache.InformerSynced
	sink     TemplateSink
	reporter CompileErrorReporter
	logger   *slog.Logger
}

// NewWatcher returns a Watcher over dyn.
func NewWatcher(dyn dynamic.Interface, cfg WatcherConfig) (*Watcher, error) {
	if cfg.Sink == nil {
		return nil, fmt.Errorf("new watcher: WatcherConfig.Sink is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		factory:  dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, cfg.Resync, cfg.Namespace, nil),
		sink:     cfg.Sink,
		reporter: cfg.Reporter,
		logger:   cfg.Logger,
	}

	for _, informer := range []cache.SharedIndexInformer{
		w.factory.ForResource(WorkflowTemplatesResource).Informer(),
		w.factory.ForResource(ClusterWorkflowTemplatesResource).Informer(),
	} {
		registration, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.upsert,
			UpdateFunc: func(_, obj any) { w.upsert(obj) },
			DeleteFunc: w.delete,
		})
		if err != nil {
			return nil, fmt.Errorf("add template event handler: %w", err)
		}
		w.synced = append(w.synced, registration.HasSynced)
	}
	return w, nil
}

// Start starts the informers. They stop when ctx is done.
func (w *Watcher) Start(ctx context.Context) {
	w.factory.Start(ctx.Done())
}

// HasSynced reports whether every template seen at start has reached the
// sink.
func (w *Watcher) HasSynced() bool {
	for _, synced := range w.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until HasSynced or ctx is done, and reports which.
func (w *Watcher) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), w.synced...)
}

func (w *Watcher) upsert(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		w.logger.Error("unexpected object from template informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	t, err := TemplateFromObject(u)
	if err != nil {
		// The resource is unusable, so drop any earlier version and no
		// stale expression keeps firing.
		w.logger.Warn("template skipped", "resource", t.Ref.String(), "error", err)
		w.sink.Delete(t.Ref)
		return
	}
	// The sink logs compile errors, and returns each version's only once.
	if err := w.sink.Upsert(t); err != nil && w.reporter != nil {
		w.reporter.ReportCompileError(t, err)
	}
}

func (w *Watcher) delete(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		w.logger.Error("unexpected object from template informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	w.sink.Delete(model.ResourceRef{Kind: model.Kind(u.GetKind()), Namespace: u.GetNamespace(), Name: u.GetName()})
}
