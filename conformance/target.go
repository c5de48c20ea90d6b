package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Profile selects what the suite expects of the server.
type Profile string

// The profiles.
const (
	// ProfileWFEvents holds the server to the whole wfevents contract.
	ProfileWFEvents Profile = "wfevents"

	// ProfileArgo expects Argo Workflows' server: known differences are
	// expected failures, and what only wfevents offers is skipped.
	//
	// NOTE: the suite fires WorkflowTemplates with an event block, and
	// Argo's server reads only WorkflowEventBindings (its
	// server/event/dispatch/operation.go), so against Argo the checks that
	// need the suite's templates are skipped. This profile has been run
	// against wfevents only.
	ProfileArgo Profile = "argo"
)

// Defaults for the zero values of [Target].
const (
	DefaultNamespace    = "argo"
	DefaultMaxBodyBytes = 2 << 20
	DefaultWaitTimeout  = 10 * time.Second
)

// requestTimeout bounds one HTTP exchange. It is above the 10 seconds
// within which the contract wants every response, so a late one is
// measured and reported by latency.admission rather than cut off.
const requestTimeout = 15 * time.Second

// Target is the server under test and what the suite may use besides it.
// Only URL and Token are required.
type Target struct {
	// URL is the server's base URL, such as http://127.0.0.1:2746.
	URL string

	// Token is a bearer token that may send events to Namespace and, for
	// the cluster-scoped routes, to every namespace.
	Token string

	// Namespace is the namespace the suite sends events to and keeps its
	// templates in. Empty means DefaultNamespace.
	Namespace string

	// ScopedToken is a bearer token limited to ScopedNamespace, for the
	// checks that a namespace-scoped token stays in its namespace. Without
	// it those checks are skipped.
	ScopedToken     string
	ScopedNamespace string

	// Profile is ProfileWFEvents when empty.
	Profile Profile

	// MaxBodyBytes is the server's body size limit. Zero means
	// DefaultMaxBodyBytes, the limit wfevents has by default.
	MaxBodyBytes int64

	// WaitTimeout bounds each wait for a Workflow to appear or for
	// installed templates to be loaded. Zero means DefaultWaitTimeout.
	WaitTimeout time.Duration

	// Client sends the requests. Nil means a client with a timeout of
	// 15 seconds per request.
	Client *http.Client

	// InstallTemplates, when set, creates the objects (WorkflowTemplates, a
	// ClusterWorkflowTemplate and a WorkflowEventBinding) in the cluster the
	// server reads, and returns a function that deletes them again. Without
	// it the suite uses the templates it finds in Namespace.
	InstallTemplates func(ctx context.Context, objects []*unstructured.Unstructured) (remove func(context.Context) error, err error)

	// ListWorkflows, when set, returns the Workflows in a namespace. Without
	// it the suite uses GET /api/v1/workflows/{namespace} if the server
	// offers it.
	ListWorkflows func(ctx context.Context, namespace string) ([]*unstructured.Unstructured, error)

	// BlockWorkers, when set, stops the server's workers before they create
	// their next Workflow, and returns a function that lets them go on. It
	// must wait until the server holds no event before it returns, so the
	// pipeline checks can count. Only an in-process server can offer it.
	BlockWorkers func(ctx context.Context) (release func(), err error)

	// PipelineSize is the server's --event-pipeline-size, which the
	// pipeline checks need together with BlockWorkers.
	PipelineSize int
}

// withDefaults validates t and fills in its defaults.
func (t Target) withDefaults() (Target, error) {
	base, err := url.Parse(t.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return t, fmt.Errorf("invalid target URL %q: give the server's base URL, such as http://127.0.0.1:2746", t.URL)
	}
	t.URL = strings.TrimSuffix(t.URL, "/")

	if t.Token == "" {
		return t, errors.New("missing target token: give a bearer token that may send events to the namespace")
	}
	if (t.ScopedToken == "") != (t.ScopedNamespace == "") {
		return t, errors.New("a scoped token needs its namespace: give both or neither")
	}

	if t.Namespace == "" {
		t.Namespace = DefaultNamespace
	}
	switch t.Profile {
	case "":
		t.Profile = ProfileWFEvents
	case ProfileWFEvents, ProfileArgo:
	default:
		return t, fmt.Errorf("invalid profile %q: use %s or %s", t.Profile, ProfileWFEvents, ProfileArgo)
	}

	if t.MaxBodyBytes < 0 || t.WaitTimeout < 0 || t.PipelineSize < 0 {
		return t, errors.New("invalid target: MaxBodyBytes, WaitTimeout and PipelineSize must not be negative")
	}
	if t.MaxBodyBytes == 0 {
		t.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if t.WaitTimeout == 0 {
		t.WaitTimeout = DefaultWaitTimeout
	}
	if t.Client == nil {
		t.Client = &http.Client{Timeout: requestTimeout}
	}
	return t, nil
}
