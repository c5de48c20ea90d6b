package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/wfevents/wfevents/model"
)

// Client creates and lists Workflows through the dynamic client. It is safe
// for concurrent use.
type Client struct {
	dynamic dynamic.Interface
}

// NewClient returns a Client that uses dyn.
func NewClient(dyn dynamic.Interface) *Client {
	return &Client{dynamic: dyn}
}

// CreateWorkflow creates wf and returns it as stored, with its generated name.
// The error is a *model.Error whose code classifies the API server's response.
func (c *Client) CreateWorkflow(ctx context.Context, wf model.Workflow) (model.Workflow, error) {
	obj := WorkflowToObject(wf)
	created, err := c.dynamic.Resource(WorkflowsResource).Namespace(wf.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return model.Workflow{}, classify(fmt.Sprintf("create workflow in namespace %q", wf.Namespace), err)
	}
	return WorkflowFromObject(created), nil
}

// ListWorkflows lists the Workflows of namespace.
func (c *Client) ListWorkflows(ctx context.Context, namespace string) (*unstructured.UnstructuredList, error) {
	list, err := c.dynamic.Resource(WorkflowsResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, classify(fmt.Sprintf("list workflows in namespace %q", namespace), err)
	}
	return list, nil
}

// classify wraps an API error in a *model.Error. Only 429 and 503 are
// transient (model.CodeUnavailable), because the API server sends them before
// storing anything, so a retry cannot create a duplicate.
func classify(operation string, err error) error {
	code := model.CodeInternal
	switch {
	case apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err):
		code = model.CodeUnavailable
	case apierrors.IsForbidden(err):
		code = model.CodePermissionDenied
	case apierrors.IsNotFound(err):
		code = model.CodeNotFound
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = model.CodeInvalid
	}
	return &model.Error{Code: code, Message: operation + " failed", Err: err}
}

// ListWorkflowObjects lists the Workflows of namespace as JSON objects, for
// the HTTP list endpoint.
func (c *Client) ListWorkflowObjects(ctx context.Context, namespace string) ([]map[string]any, error) {
	list, err := c.ListWorkflows(ctx, namespace)
	if err != nil {
		return nil, err
	}
	items := make([]map[string]any, len(list.Items))
	for i := range list.Items {
		items[i] = list.Items[i].Object
	}
	return items, nil
}
