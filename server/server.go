// Package server is the HTTP surface of wfevents: the events endpoint, the
// Workflow list, and health checks. Its handler authenticates, parses and
// queues an event, and leaves all matching and creating to the workers.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
)

// Authenticator resolves a bearer token to the caller's identity. An unknown
// token is a *model.Error with code model.CodeUnauthenticated.
type Authenticator interface {
	Authenticate(ctx context.Context, token model.Token) (model.Identity, error)
}

// MemoryAuthenticator is an Authenticator that can also resolve a token it
// holds in memory, such as a cached review, without blocking. The server
// tries that first and skips the admission deadline's goroutine and timer
// when found is true.
type MemoryAuthenticator interface {
	Authenticator
	AuthenticateFromMemory(token model.Token) (identity model.Identity, found bool, err error)
}

// MemoryAuthorizer is a model.Authorizer that can also return a decision it
// holds in memory without blocking, as MemoryAuthenticator does.
type MemoryAuthorizer interface {
	model.Authorizer
	MayCreateWorkflowsFromMemory(caller model.Identity, namespace string) (allowed, found bool)
}

// Queue accepts events for the workers. Enqueue must not wait for room: a
// full queue is an error with code model.CodeUnavailable.
type Queue interface {
	Enqueue(ev model.Event) error
}

// WorkflowLister lists the Workflows of a namespace as JSON objects.
type WorkflowLister interface {
	ListWorkflowObjects(ctx context.Context, namespace string) ([]map[string]any, error)
}

// DefaultMaxBodyBytes is the body size limit when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 2 << 20

// DefaultAdmissionTimeout is the admission deadline when
// Config.AdmissionTimeout is zero. It is well under the 10 seconds after
// which webhook senders such as GitHub give up on a delivery.
const DefaultAdmissionTimeout = 5 * time.Second

// Defaults for the synchronous mode.
const (
	DefaultSyncTimeout = 30 * time.Second
	DefaultSyncLimit   = 64
)

// Config configures a Server. Authenticator and Queue are required.
type Config struct {
	Authenticator Authenticator
	Queue         Queue

	// Authorizer decides which namespaces a caller may send events to.
	// Nil means the namespaces listed in the caller's model.Identity.
	Authorizer model.Authorizer

	// Workflows serves GET /api/v1/workflows/{namespace}. When it is nil,
	// that route returns 404.
	Workflows WorkflowLister

	// WebhookClients authenticates events sent without an Authorization
	// header by their webhook signature. Nil means such events get 401.
	WebhookClients WebhookClients

	// Dispatcher evaluates events in the request: for dry runs
	// (?dryRun=All), and for every event when SyncDispatch is set. When it
	// is nil, a dry run gets 501.
	Dispatcher Dispatcher

	// SyncDispatch makes submission synchronous: the request waits for its
	// Workflows and the response lists them, and Queue is not used. It is
	// Argo's --event-async-dispatch=false. It needs Dispatcher.
	SyncDispatch bool

	// RenderWorkflow turns a Workflow into the manifest a dry run shows.
	// Nil shows the model's fields.
	RenderWorkflow func(model.Workflow) any

	// SyncTimeout bounds a synchronous submission. Zero means
	// DefaultSyncTimeout.
	SyncTimeout time.Duration

	// SyncLimit bounds the synchronous submissions in progress at once;
	// the next gets 503. Zero means DefaultSyncLimit.
	SyncLimit int

	// MaxBodyBytes limits the event body. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// AdmissionTimeout bounds authentication. Zero means
	// DefaultAdmissionTimeout.
	AdmissionTimeout time.Duration

	// Ready reports whether the server may take events, for /readyz. Nil
	// means always ready.
	Ready func() bool

	// Metrics records admission counts and serves GET /metrics. Nil
	// records nothing and serves no metrics.
	Metrics *metrics.Metrics

	// Logger receives errors and, at Debug, one line per request. Nil
	// discards.
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// NewEventID returns a new event ID. Nil means a random UUID.
	NewEventID func() string
}

// Server is the wfevents HTTP handler. It is safe for concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux

	// syncSlots holds one token per synchronous submission in progress.
	syncSlots chan struct{}
}

// New validates cfg, fills in its defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Authenticator == nil {
		return nil, errors.New("new server: Config.Authenticator is required")
	}
	if cfg.Queue == nil {
		return nil, errors.New("new server: Config.Queue is required")
	}
	if cfg.SyncDispatch && cfg.Dispatcher == nil {
		return nil, errors.New("new server: Config.SyncDispatch needs Config.Dispatcher")
	}
	if cfg.RenderWorkflow == nil {
		cfg.RenderWorkflow = func(wf model.Workflow) any { return wf }
	}
	for field, negative := range map[string]bool{
		"MaxBodyBytes":     cfg.MaxBodyBytes < 0,
		"AdmissionTimeout": cfg.AdmissionTimeout < 0,
		"SyncTimeout":      cfg.SyncTimeout < 0,
		"SyncLimit":        cfg.SyncLimit < 0,
	} {
		if negative {
			return nil, fmt.Errorf("new server: Config.%s must not be negative", field)
		}
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.AdmissionTimeout == 0 {
		cfg.AdmissionTimeout = DefaultAdmissionTimeout
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.SyncLimit == 0 {
		cfg.SyncLimit = DefaultSyncLimit
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = identityAuthorizer{}
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewEventID == nil {
		cfg.NewEventID = uuid.NewString
	}

	s := &Server{cfg: cfg, mux: http.NewServeMux(), syncSlots: make(chan struct{}, cfg.SyncLimit)}
	s.mux.HandleFunc("GET /api/v1/workflows/{namespace}", s.handleListWorkflows)
	s.mux.HandleFunc("/api/v1/workflows/{namespace}", s.handleWorkflowsMethod)
	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics.Handler())
	}
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)
	s.mux.HandleFunc("/", s.handleNotFound)
	return s, nil
}

// eventsPrefix is the path prefix of the events endpoint.
const eventsPrefix = "/api/v1/events/"

// ServeHTTP routes the request.
//
// The events endpoint is routed by hand because its cluster-scoped form,
// /api/v1/events//{discriminator}, has an empty segment, and http.ServeMux
// redirects such paths, and clients do not follow a redirect for POST.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.EscapedPath(), eventsPrefix) {
		s.cfg.Metrics.EventReceived()
		s.handleEvent(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	if !s.cfg.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready: template caches are not synced yet, or the server is shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleWorkflowsMethod(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodGet)
	s.writeError(w, r, model.Errorf(model.CodeUnimplemented, "method %s is not allowed on %q: list workflows with GET", clip(r.Method), clip(r.URL.Path)))
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, model.Errorf(model.CodeNotFound, "no route for %s %q: events go to POST /api/v1/events/{namespace}", clip(r.Method), clip(r.URL.Path)))
}

// handleListWorkflows lists the Workflows of a namespace in the shape of
// Argo's WorkflowList, so that a user can see what an event created.
func (s *Server) handleListWorkflows(w http.ResponseWriter, r *http.Request) {
	namespace := r.PathValue("namespace")
	if err := validateNamespace(namespace); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Workflows == nil {
		s.writeError(w, r, model.Errorf(model.CodeNotFound, "listing workflows is not available on this server"))
		return
	}

	caller, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// NOTE: listing is allowed to any caller that may create Workflows in
	// the namespace, which is the one permission the server checks.
	if err := s.authorize(r, caller, namespace); err != nil {
		s.writeError(w, r, err)
		return
	}

	items, err := s.cfg.Workflows.ListWorkflowObjects(r.Context(), namespace)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "WorkflowList",
		"metadata":   map[string]any{},
		"items":      items,
	})
}

// identityAuthorizer allows the namespaces listed in the caller's identity.
type identityAuthorizer struct{}

func (identityAuthorizer) MayCreateWorkflows(_ context.Context, caller model.Identity, namespace string) (bool, error) {
	return caller.MayUse(namespace), nil
}
