package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Resources of Argo Workflows the suite reads and writes.
var (
	workflowsResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"}

	resourceByKind = map[string]schema.GroupVersionResource{
		"WorkflowTemplate":        {Group: "argoproj.io", Version: "v1alpha1", Resource: "workflowtemplates"},
		"ClusterWorkflowTemplate": {Group: "argoproj.io", Version: "v1alpha1", Resource: "clusterworkflowtemplates"},
		"WorkflowEventBinding":    {Group: "argoproj.io", Version: "v1alpha1", Resource: "workfloweventbindings"},
	}
)

// Labels by which Argo and wfevents name the resource a Workflow came from.
var originLabels = []string{
	"workflows.argoproj.io/workflow-template",
	"workflows.argoproj.io/cluster-workflow-template",
	"workflows.argoproj.io/workflow-event-binding",
}

// Kubernetes installs the suite's templates and reads Workflows through a
// Kubernetes API, for [Target.InstallTemplates] and [Target.ListWorkflows].
// The client needs create, update, get and delete on the templates and the
// binding, and list and delete on Workflows.
type Kubernetes struct {
	client dynamic.Interface
}

// NewKubernetes returns access to the cluster of client, which may be a
// client of a real API server or a fake one.
func NewKubernetes(client dynamic.Interface) *Kubernetes {
	return &Kubernetes{client: client}
}

// resourceFor returns the client of obj's resource in obj's namespace.
func (k *Kubernetes) resourceFor(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvr, known := resourceByKind[obj.GetKind()]
	if !known {
		return nil, fmt.Errorf("install %s %q: unsupported kind: only WorkflowTemplate, ClusterWorkflowTemplate and WorkflowEventBinding", obj.GetKind(), obj.GetName())
	}
	if obj.GetNamespace() == "" {
		return k.client.Resource(gvr), nil
	}
	return k.client.Resource(gvr).Namespace(obj.GetNamespace()), nil
}

// InstallTemplates creates objects, replacing any left by an earlier run,
// and returns a function that deletes them and the Workflows they created.
// When one object fails, it deletes the ones it created before returning.
func (k *Kubernetes) InstallTemplates(ctx context.Context, objects []*unstructured.Unstructured) (func(context.Context) error, error) {
	var installed []*unstructured.Unstructured
	remove := func(ctx context.Context) error { return k.remove(ctx, installed) }

	for _, obj := range objects {
		if err := k.apply(ctx, obj); err != nil {
			return nil, errors.Join(err, remove(ctx))
		}
		installed = append(installed, obj)
	}
	return remove, nil
}

// apply creates obj, or replaces the object of that name.
func (k *Kubernetes) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	resource, err := k.resourceFor(obj)
	if err != nil {
		return err
	}
	_, err = resource.Create(ctx, obj.DeepCopy(), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create %s %q: %w", obj.GetKind(), obj.GetName(), err)
		}
		return nil
	}

	existing, err := resource.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read %s %q to replace it: %w", obj.GetKind(), obj.GetName(), err)
	}
	replacement := obj.DeepCopy()
	replacement.SetResourceVersion(existing.GetResourceVersion())
	if _, err := resource.Update(ctx, replacement, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("replace %s %q: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}

// remove deletes the objects, then the Workflows whose origin labels name
// one of them, in the namespaces of the objects.
func (k *Kubernetes) remove(ctx context.Context, objects []*unstructured.Unstructured) error {
	var errs []error
	names := make(map[string]bool)
	var namespaces []string
	for _, obj := range objects {
		names[obj.GetName()] = true
		if namespace := obj.GetNamespace(); namespace != "" && !slices.Contains(namespaces, namespace) {
			namespaces = append(namespaces, namespace)
		}
		resource, err := k.resourceFor(obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := resource.Delete(ctx, obj.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %q: %w", obj.GetKind(), obj.GetName(), err))
		}
	}

	for _, namespace := range namespaces {
		errs = append(errs, k.deleteWorkflowsFrom(ctx, namespace, names))
	}
	return errors.Join(errs...)
}

func (k *Kubernetes) deleteWorkflowsFrom(ctx context.Context, namespace string, origins map[string]bool) error {
	workflows := k.client.Resource(workflowsResource).Namespace(namespace)
	list, err := workflows.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list Workflows in namespace %q to delete the suite's: %w", namespace, err)
	}
	var errs []error
	for _, wf := range list.Items {
		if !hasOrigin(&wf, origins) {
			continue
		}
		if err := workflows.Delete(ctx, wf.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Workflow %s/%s: %w", namespace, wf.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// hasOrigin reports whether an origin label of wf names one of origins.
func hasOrigin(wf *unstructured.Unstructured, origins map[string]bool) bool {
	labels := wf.GetLabels()
	for _, key := range originLabels {
		if origins[labels[key]] {
			return true
		}
	}
	return false
}

// ListWorkflows returns the Workflows in namespace.
func (k *Kubernetes) ListWorkflows(ctx context.Context, namespace string) ([]*unstructured.Unstructured, error) {
	list, err := k.client.Resource(workflowsResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Workflows in namespace %q: %w", namespace, err)
	}
	items := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	return items, nil
}
