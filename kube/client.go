package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"

	"github.com/wfevents/wfevents/model"
)

// Client reads templates and creates and lists Workflows through the dynamic
// client. It is safe for concurrent use.
type Client struct {
	// dynamic acts as the server itself.
	dynamic dynamic.Interface

	// config and httpClient, when set, build clients that impersonate the
	// caller. They share httpClient's transport, so impersonating adds no
	// connections.
	config     *rest.Config
	httpClient *http.Client

	// templates, when set, keeps successful template reads per caller.
	templates *expirable.LRU[string, model.Template]
}

// CacheTemplateReads makes c reuse a template it read as a caller, for that
// same caller, for ttl. Without it, every event that matches reads its
// template from the API server as well as creating its Workflow, which
// doubles the API requests per event. Only successful reads are kept, so a
// newly granted permission works at once.
//
// NOTE: like the review caches, this delays the effect of a change for up
// to ttl: a caller whose read permission was revoked can still start the
// template, and a change to the template's workflowMetadata reaches new
// Workflows late. The expression and parameters come from the informer and
// change at once.
func (c *Client) CacheTemplateReads(ttl time.Duration, size int) {
	c.templates = expirable.NewLRU[string, model.Template](size, nil, ttl)
}

// templateKey identifies a template read by caller.
func templateKey(caller model.Identity, namespace string, ref model.TemplateRef) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{
		caller.Subject, caller.UID, strings.Join(caller.Groups, "\x00"),
		namespace, ref.Name, strconv.FormatBool(ref.ClusterScope),
	}, "\x01")))
	return hex.EncodeToString(sum[:])
}

// NewClient returns a Client that acts with dyn's own credentials and does
// not impersonate callers. That suits the embedded cluster, which has no
// access control to enforce.
func NewClient(dyn dynamic.Interface) *Client {
	return &Client{dynamic: dyn}
}

// NewImpersonatingClient returns a Client that reads templates and creates
// Workflows as the caller, through Kubernetes impersonation, so the API
// server applies the caller's RBAC. The identity in config needs the
// impersonate verb on users, groups, uids and serviceaccounts.
func NewImpersonatingClient(config *rest.Config) (*Client, error) {
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, fmt.Errorf("build HTTP client for %s: %w", config.Host, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client for %s: %w", config.Host, err)
	}
	return &Client{dynamic: dyn, config: config, httpClient: httpClient}, nil
}

// forCaller returns a dynamic client that acts as caller, or the server's own
// client when the Client does not impersonate.
func (c *Client) forCaller(caller model.Identity) (dynamic.Interface, error) {
	if c.config == nil {
		return c.dynamic, nil
	}
	// The API server treats an empty user as no impersonation at all, which
	// would run the request with the server's own permissions.
	if caller.Subject == "" {
		return nil, errors.New("caller has no user name to impersonate")
	}
	impersonating := &http.Client{
		Transport: transport.NewImpersonatingRoundTripper(transport.ImpersonationConfig{
			UserName: caller.Subject,
			UID:      caller.UID,
			Groups:   caller.Groups,
		}, c.httpClient.Transport),
		Timeout: c.httpClient.Timeout,
	}
	// NOTE: the caller's extra attributes from the TokenReview (such as a
	// service account token's pod name) are not impersonated, because that
	// needs the impersonate verb on userextras for every key.
	return dynamic.NewForConfigAndClient(c.config, impersonating)
}

// GetTemplate reads, as caller, the WorkflowTemplate ref names in namespace,
// or the ClusterWorkflowTemplate when ref.ClusterScope is set. The error is
// a *model.Error whose code classifies the API server's response.
func (c *Client) GetTemplate(ctx context.Context, caller model.Identity, namespace string, ref model.TemplateRef) (model.Template, error) {
	var key string
	if c.templates != nil {
		key = templateKey(caller, namespace, ref)
		if template, ok := c.templates.Get(key); ok {
			return template, nil
		}
	}

	dyn, err := c.forCaller(caller)
	if err != nil {
		return model.Template{}, &model.Error{Code: model.CodeInternal, Message: "impersonate caller failed", Err: err}
	}

	templates := dyn.Resource(WorkflowTemplatesResource).Namespace(namespace)
	kind := "workflowtemplate"
	if ref.ClusterScope {
		templates = dyn.Resource(ClusterWorkflowTemplatesResource)
		kind = "clusterworkflowtemplate"
	}
	obj, err := templates.Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return model.Template{}, classify(fmt.Sprintf("read %s %q as %q", kind, ref.Name, caller.Subject), err)
	}
	template, err := TemplateFromObject(obj)
	if err != nil {
		return model.Template{}, &model.Error{Code: model.CodeInvalid, Message: fmt.Sprintf("%s %q is not valid", kind, ref.Name), Err: err}
	}
	if c.templates != nil {
		c.templates.Add(key, template)
	}
	return template, nil
}

// CreateWorkflow creates wf as caller and returns it as stored, with its
// generated name. The error is a *model.Error whose code classifies the API
// server's response.
func (c *Client) CreateWorkflow(ctx context.Context, caller model.Identity, wf model.Workflow) (model.Workflow, error) {
	dyn, err := c.forCaller(caller)
	if err != nil {
		return model.Workflow{}, &model.Error{Code: model.CodeInternal, Message: "impersonate caller failed", Err: err}
	}
	if err := validateWorkflow(wf); err != nil {
		return model.Workflow{}, err
	}
	obj := WorkflowToObject(wf)
	created, err := dyn.Resource(WorkflowsResource).Namespace(wf.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return model.Workflow{}, classify(fmt.Sprintf("create workflow in namespace %q as %q", wf.Namespace, caller.Subject), err)
	}
	return WorkflowFromObject(created), nil
}

// GetWorkflow reads a Workflow as the server itself.
func (c *Client) GetWorkflow(ctx context.Context, namespace, name string) (model.Workflow, error) {
	obj, err := c.dynamic.Resource(WorkflowsResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return model.Workflow{}, classify(fmt.Sprintf("read workflow %q in namespace %q", name, namespace), err)
	}
	return WorkflowFromObject(obj), nil
}

// ListWorkflows lists the Workflows of namespace as the server itself.
func (c *Client) ListWorkflows(ctx context.Context, namespace string) (*unstructured.UnstructuredList, error) {
	list, err := c.dynamic.Resource(WorkflowsResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, classify(fmt.Sprintf("list workflows in namespace %q", namespace), err)
	}
	return list, nil
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

// classify wraps an API error in a *model.Error. Throttling (429), server
// errors (5xx), server-side timeouts, conflicts and failed connections are
// transient (model.CodeUnavailable). Retrying them is safe, because created
// Workflows have names derived from the event, so a create that did reach
// the API server finds AlreadyExists instead of making a second Workflow.
//
// The API server's own message goes to the sender, because it names what to
// fix ("already exists", "is invalid: metadata.name ...") and is about the
// caller's own request. Other errors, such as a refused connection, name the
// server's infrastructure and stay in the log.
func classify(operation string, err error) error {
	message := operation + " failed"
	if status, ok := err.(apierrors.APIStatus); ok && status.Status().Message != "" {
		message += ": " + status.Status().Message
	}

	code := model.CodeInternal
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = model.CodeDeadlineExceeded
		message = operation + " timed out"
	case apierrors.IsAlreadyExists(err):
		code = model.CodeAlreadyExists
	case apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsConflict(err), apierrors.IsUnexpectedServerError(err),
		isConnectionError(err):
		code = model.CodeUnavailable
	case apierrors.IsForbidden(err):
		code = model.CodePermissionDenied
	case apierrors.IsNotFound(err):
		code = model.CodeNotFound
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = model.CodeInvalid
	}
	var retryAfter time.Duration
	if seconds, ok := apierrors.SuggestsClientDelay(err); ok {
		retryAfter = time.Duration(seconds) * time.Second
	}
	return &model.Error{Code: code, Message: message, Err: err, RetryAfter: retryAfter}
}

// isConnectionError reports whether err means the API server could not be
// reached or dropped the connection, as opposed to returning an error.
func isConnectionError(err error) bool {
	if utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) {
		return true
	}
	netErr, ok := errors.AsType[net.Error](err)
	return ok && netErr.Timeout()
}
