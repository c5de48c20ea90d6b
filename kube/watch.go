package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/wfevents/wfevents/model"
)

// TemplateSink receives every template and binding version the informers
// see. *matcher.Catalog implements it. The upsert methods return a compile
// error only the first time they see a version.
type TemplateSink interface {
	Upsert(t model.Template) error
	UpsertBinding(b model.Binding) error
	Delete(ref model.ResourceRef)
}

// CompileErrorReporter receives each template version whose expressions do
// not compile. *Recorder implements it.
type CompileErrorReporter interface {
	ReportCompileError(resource model.ObjectMeta, err error)
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

// Watcher feeds a TemplateSink from shared informers on WorkflowTemplates,
// ClusterWorkflowTemplates and WorkflowEventBindings.
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

	for resource, upsert := range map[schema.GroupVersionResource]func(*unstructured.Unstructured){
		WorkflowTemplatesResource:        w.upsertTemplate,
		ClusterWorkflowTemplatesResource: w.upsertTemplate,
		WorkflowEventBindingsResource:    w.upsertBinding,
	} {
		handle := func(obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				upsert(u)
				return
			}
			w.logger.Error("unexpected object from informer", "resource", resource.Resource, "type", fmt.Sprintf("%T", obj))
		}
		registration, err := w.factory.ForResource(resource).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    handle,
			UpdateFunc: func(_, obj any) { handle(obj) },
			DeleteFunc: w.delete,
		})
		if err != nil {
			return nil, fmt.Errorf("add %s event handler: %w", resource.Resource, err)
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

func (w *Watcher) upsertTemplate(u *unstructured.Unstructured) {
	t, err := TemplateFromObject(u)
	if err != nil {
		w.skip(t.Ref, err)
		return
	}
	w.report(t.Meta(), w.sink.Upsert(t))
}

func (w *Watcher) upsertBinding(u *unstructured.Unstructured) {
	b, err := BindingFromObject(u)
	if err != nil {
		w.skip(b.Ref, err)
		return
	}
	w.report(b.Meta(), w.sink.UpsertBinding(b))
}

// skip drops a resource that cannot be read, with any earlier version, so
// no stale expression keeps firing.
func (w *Watcher) skip(ref model.ResourceRef, err error) {
	w.logger.Warn("resource skipped", "resource", ref.String(), "error", err)
	w.sink.Delete(ref)
}

// report passes a compile error on. The sink has logged it already.
func (w *Watcher) report(resource model.ObjectMeta, err error) {
	if err != nil && w.reporter != nil {
		w.reporter.ReportCompileError(resource, err)
	}
}

func (w *Watcher) delete(obj any) {
	u, ok := deletedObject(obj, w.logger)
	if !ok {
		return
	}
	w.sink.Delete(model.ResourceRef{Kind: model.Kind(u.GetKind()), Namespace: u.GetNamespace(), Name: u.GetName()})
}

// deletedObject returns the object of an informer's delete notification,
// which is either the object or a tombstone holding its last known state. It
// logs anything else, which would be a bug in the informer's setup.
func deletedObject(obj any, logger *slog.Logger) (*unstructured.Unstructured, bool) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		logger.Error("unexpected object from informer", "type", fmt.Sprintf("%T", obj))
	}
	return u, ok
}
