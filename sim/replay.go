package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

// ReplayConfig configures a Replayer.
type ReplayConfig struct {
	// Fixtures seed the fake cluster: templates, bindings, webhook clients
	// and the token table that recorded subjects are looked up in.
	Fixtures *fixtures.Set

	// As, when set, is the subject of every request that carries an
	// Authorization header, in place of the recorded subject.
	As string

	// TrustSignatures makes replay sign every webhook delivery again with
	// the fixtures' secret of its recorded subject, so deliveries whose
	// signature was redacted, or made with another secret, are accepted.
	TrustSignatures bool

	// MaxBodyBytes is the server's body limit. Zero means the default.
	MaxBodyBytes int64

	// PipelineSize and WorkerCount configure the event pipeline. Zero
	// means the server's defaults. Replay sends one request at a time, so
	// they matter only to callers that drive the handler themselves.
	PipelineSize int
	WorkerCount  int

	// ProcessTimeout bounds the wait for the workers to finish one event.
	// Zero means 30 seconds.
	ProcessTimeout time.Duration

	Logger *slog.Logger
}

// Replayer runs recorded requests, one at a time, through the real handler,
// matcher and workers over a fake cluster seeded from fixtures. It is not
// safe for concurrent use.
type Replayer struct {
	cfg ReplayConfig
	app *app.App

	// tokenPrefix starts the bearer tokens that stand for recorded
	// subjects. It is random, so no token of the fixtures can collide.
	tokenPrefix string

	// eventID is the ID the server gives the request being replayed when
	// the request carries no delivery ID.
	eventID string

	// created contains the Workflow names created so far, to tell a
	// redelivery that found its Workflow from a new one.
	created map[string]bool

	mu       sync.Mutex
	outcomes map[string][]workers.Outcome // by event ID, guarded by mu
}

// Report is the result of replaying a stream: one EventResult per request.
type Report struct {
	Events []EventResult `json:"events"`
}

// EventResult is the outcome of one replayed request.
type EventResult struct {
	// Line is the request's line in the stream.
	Line   int    `json:"line"`
	Method string `json:"method"`
	Path   string `json:"path"`

	// Status is the HTTP status of the response, or zero when the request
	// could not be replayed, as Errors then explains.
	Status  int    `json:"status"`
	EventID string `json:"eventId,omitempty"`

	// Matched lists the templates and bindings whose expression was true,
	// as Kind/namespace/name.
	Matched []string `json:"matched,omitempty"`

	Workflows []WorkflowResult `json:"workflows,omitempty"`

	// Errors are the response's error message and every resource that
	// failed for the event.
	Errors []string `json:"errors,omitempty"`

	// Queued reports whether the server queued the event for the workers.
	// A GitHub ping, for one, gets 200 without being queued.
	Queued bool `json:"-"`
}

// WorkflowResult is one Workflow an event created.
type WorkflowResult struct {
	// Resource is the template or binding that matched.
	Resource  string `json:"resource"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`

	// Template is the template the Workflow runs, as Kind/name.
	Template   string      `json:"template"`
	Parameters []Parameter `json:"parameters,omitempty"`

	// Existing marks a Workflow that an earlier request of the replay
	// created, such as a redelivery with the same delivery ID finds.
	Existing bool `json:"existing,omitempty"`
}

// Parameter is one parameter value of a created Workflow.
type Parameter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// NewReplayer builds and starts the server that requests are replayed on.
// Call Close when done.
func NewReplayer(ctx context.Context, cfg ReplayConfig) (*Replayer, error) {
	if cfg.Fixtures == nil {
		return nil, errors.New("replay needs fixtures: pass --fixtures DIR")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcessTimeout == 0 {
		cfg.ProcessTimeout = 30 * time.Second
	}
	if cfg.As != "" {
		if _, ok := cfg.Fixtures.Tokens.Lookup(cfg.As); !ok {
			return nil, fmt.Errorf("invalid --as %q: the subject has no row in the fixtures' tokens.csv: pass a subject listed there, or replay with --fixtures DIR whose tokens.csv lists it", cfg.As)
		}
	}

	r := &Replayer{
		cfg:         cfg,
		tokenPrefix: "replay-" + rand.Text() + ":",
		created:     make(map[string]bool),
		outcomes:    make(map[string][]workers.Outcome),
	}
	built, err := app.NewEmbedded(app.Config{
		MaxBodyBytes: cfg.MaxBodyBytes,
		// The server records metrics as "wfevents serve" does, so a
		// recorded scrape of /metrics replays as a 200.
		Metrics:       metrics.New(metrics.Config{}),
		PipelineSize:  cfg.PipelineSize,
		WorkerCount:   cfg.WorkerCount,
		Logger:        cfg.Logger,
		NewEventID:    func() string { return r.eventID },
		Authenticator: subjectAuthenticator{prefix: r.tokenPrefix, tokens: cfg.Fixtures.Tokens},
		Processed:     r.recordOutcomes,
	}, cfg.Fixtures)
	if err != nil {
		return nil, err
	}
	r.app = built

	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !built.Start(syncCtx) {
		built.Stop()
		return nil, errors.New("fake cluster caches did not sync within 30s")
	}
	return r, nil
}

// Close stops the server.
func (r *Replayer) Close() {
	r.app.Stop()
}

func (r *Replayer) recordOutcomes(ev model.Event, outcomes []workers.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[ev.ID] = outcomes
}

// Replay sends req to the server and, when the server queued an event,
// waits until the workers have processed it.
func (r *Replayer) Replay(ctx context.Context, req Request) EventResult {
	result := EventResult{Line: req.Line, Method: req.Method, Path: req.Path}

	// Sending part of a body would replay a different request, one that
	// might even be accepted, so such a line is only reported.
	if req.BodyIncomplete {
		result.Errors = []string{fmt.Sprintf("not replayed: the recording server returned %d without reading the whole body, so the line does not contain the request as sent", req.Status)}
		return result
	}

	httpReq, err := r.prepare(ctx, req)
	if err != nil {
		result.Errors = []string{err.Error()}
		return result
	}

	r.eventID = req.EventID
	if r.eventID == "" {
		r.eventID = fmt.Sprintf("replay-%d", req.Line)
	}
	recorder := httptest.NewRecorder()
	r.app.Handler.ServeHTTP(recorder, httpReq)
	result.Status = recorder.Code
	result.EventID = recorder.Header().Get("X-Event-Id")
	if recorder.Code != http.StatusOK {
		result.Errors = []string{r.explain(req, recorder)}
		return result
	}
	if dryRun, ok := dryRunMatches(recorder.Body.Bytes()); ok {
		result.Matched = dryRun
		return result
	}

	if err := r.waitProcessed(ctx); err != nil {
		result.Errors = append(result.Errors, err.Error())
		return result
	}
	r.mu.Lock()
	outcomes, processed := r.outcomes[result.EventID]
	delete(r.outcomes, result.EventID)
	r.mu.Unlock()
	if processed {
		result.Queued = true
		r.describe(&result, outcomes)
	}
	return result
}

// ReplayAll replays requests in order.
func (r *Replayer) ReplayAll(ctx context.Context, requests []Request) Report {
	report := Report{Events: make([]EventResult, 0, len(requests))}
	for _, req := range requests {
		report.Events = append(report.Events, r.Replay(ctx, req))
	}
	return report
}

// prepare builds the HTTP request, acting as the recorded caller.
func (r *Replayer) prepare(ctx context.Context, req Request) (*http.Request, error) {
	httpReq, err := http.NewRequestWithContext(ctx, req.Method, req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("invalid request %s %q: %w", req.Method, req.Path, err)
	}
	httpReq.Header = req.Headers.Clone()
	if httpReq.Header == nil {
		httpReq.Header = http.Header{}
	}

	if httpReq.Header.Get("Authorization") != "" {
		return httpReq, r.actAsSubject(httpReq, req)
	}
	// A delivery without a recorded subject was not verified when it was
	// recorded, so it is sent as recorded and fails again.
	if r.cfg.TrustSignatures && isSigned(httpReq.Header) && req.Subject != "" {
		return httpReq, r.sign(httpReq, req)
	}
	return httpReq, nil
}

// actAsSubject replaces the Authorization header with a token for the
// subject the request is replayed as. Without --as or a recorded subject,
// the header is sent as recorded: a redacted token then gets 401, as a token
// the recording server rejected did.
func (r *Replayer) actAsSubject(httpReq *http.Request, req Request) error {
	subject := r.cfg.As
	if subject == "" {
		subject = req.Subject
	}
	if subject != "" {
		httpReq.Header.Set("Authorization", "Bearer "+r.tokenPrefix+subject)
	}
	return nil
}

// sign signs the body again with the secret that the fixtures' webhook
// clients give the recorded subject, a ServiceAccount of the namespace.
func (r *Replayer) sign(httpReq *http.Request, req Request) error {
	namespace, name, ok := serviceAccount(req.Subject)
	if !ok {
		return fmt.Errorf("cannot sign the delivery again: its subject %q is not a ServiceAccount (system:serviceaccount:NAMESPACE:NAME) of the webhook clients", req.Subject)
	}
	var client *model.WebhookClient
	for _, candidate := range r.app.Webhooks.Clients(namespace) {
		if candidate.Name == name {
			client = &candidate
			break
		}
	}
	if client == nil {
		return fmt.Errorf("cannot sign the delivery again: the fixtures' Secret %s in namespace %q has no client %q", model.WebhookClientsSecret, namespace, name)
	}

	// Only the sender's own header may remain, because the server tries
	// every client of the namespace against the headers it finds.
	for _, header := range signatureHeaders {
		httpReq.Header.Del(header)
	}
	secret := string(client.Secret)
	switch client.Type {
	case model.WebhookGitHub:
		httpReq.Header.Set("X-Hub-Signature-256", hmacSignature(secret, req.Body))
	case model.WebhookBitbucketServer:
		httpReq.Header.Set("X-Hub-Signature", hmacSignature(secret, req.Body))
	case model.WebhookGitLab:
		httpReq.Header.Set("X-Gitlab-Token", secret)
	case model.WebhookBitbucket:
		httpReq.Header.Set("X-Hook-Uuid", secret)
	default:
		return fmt.Errorf("cannot sign the delivery again: client %q has the unknown type %q", name, client.Type)
	}
	return nil
}

// signatureHeaders carry a webhook's signature or secret.
var signatureHeaders = []string{"X-Hub-Signature-256", "X-Hub-Signature", "X-Gitlab-Token", "X-Hook-Uuid"}

func isSigned(header http.Header) bool {
	return slices.ContainsFunc(signatureHeaders, func(name string) bool { return header.Get(name) != "" })
}

func hmacSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// serviceAccount splits system:serviceaccount:NAMESPACE:NAME.
func serviceAccount(subject string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(subject, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}

// explain returns the error message of a rejected request, with a hint when
// the recording, not the server, is the likely cause.
func (r *Replayer) explain(req Request, recorder *httptest.ResponseRecorder) string {
	var body struct {
		Message string `json:"message"`
	}
	message := strings.TrimSpace(recorder.Body.String())
	if err := json.Unmarshal(recorder.Body.Bytes(), &body); err == nil && body.Message != "" {
		message = body.Message
	}
	if recorder.Code != http.StatusUnauthorized {
		return message
	}
	switch {
	case strings.Contains(req.Headers.Get("Authorization"), Redacted) && req.Subject == "" && r.cfg.As == "":
		message += " (the token was redacted when the request was recorded and the line has no subject: if the recording server accepted it, set \"subject\" on the line or pass --as SUBJECT)"
	case hasRedactedSignature(req.Headers) && !r.cfg.TrustSignatures:
		message += " (the signature was redacted when the request was recorded: replay with --trust-signatures)"
	case hasRedactedSignature(req.Headers) && req.Subject == "":
		message += " (the signature was redacted when the request was recorded and the line has no subject: if the recording server accepted it, set \"subject\" on the line to the ServiceAccount that signs it, system:serviceaccount:NAMESPACE:NAME)"
	}
	return message
}

// dryRunMatches returns the resources that a dry run's response lists as
// matched, and whether body is a dry run's response.
func dryRunMatches(body []byte) ([]string, bool) {
	var response server.DryRunResponse
	if err := json.Unmarshal(body, &response); err != nil || !response.DryRun {
		return nil, false
	}
	var matched []string
	for _, resource := range response.Resources {
		if resource.Matched {
			ref := model.ResourceRef{Kind: resource.Kind, Namespace: resource.Namespace, Name: resource.Name}
			matched = append(matched, ref.String())
		}
	}
	return matched, true
}

// HasRedactedSignature reports whether req carries a webhook signature or
// secret header that a recorder redacted.
func HasRedactedSignature(req Request) bool {
	return hasRedactedSignature(req.Headers)
}

func hasRedactedSignature(header http.Header) bool {
	return slices.ContainsFunc(signatureHeaders, func(name string) bool { return header.Get(name) == Redacted })
}

// waitProcessed waits until the pipeline is empty, which it is once the
// workers have processed the event just queued, because requests are
// replayed one at a time.
func (r *Replayer) waitProcessed(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.ProcessTimeout)
	for r.app.Pipeline.Depth() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("event not processed within %s", r.cfg.ProcessTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

// describe fills in what the workers did with the event.
func (r *Replayer) describe(result *EventResult, outcomes []workers.Outcome) {
	for _, outcome := range outcomes {
		resource := outcome.Ref.String()
		if outcome.Matched {
			result.Matched = append(result.Matched, resource)
		}
		if outcome.Err != nil {
			result.Errors = append(result.Errors, resource+": "+server.OutcomeMessage(outcome.Err))
			continue
		}
		if outcome.Workflow == nil {
			continue
		}

		wf := outcome.Workflow
		key := wf.Namespace + "/" + wf.Name
		created := WorkflowResult{
			Resource:  resource,
			Namespace: wf.Namespace,
			Name:      wf.Name,
			Template:  templateName(wf.TemplateRef),
			Existing:  r.created[key],
		}
		for _, parameter := range wf.Parameters {
			created.Parameters = append(created.Parameters, Parameter{Name: parameter.Name, Value: parameter.Value})
		}
		r.created[key] = true
		result.Workflows = append(result.Workflows, created)
	}
}

func templateName(ref model.TemplateRef) string {
	if ref.ClusterScope {
		return string(model.KindClusterWorkflowTemplate) + "/" + ref.Name
	}
	return string(model.KindWorkflowTemplate) + "/" + ref.Name
}

// subjectAuthenticator authenticates the tokens a Replayer makes for
// recorded subjects, and passes any other token to the fixtures' table.
type subjectAuthenticator struct {
	prefix string
	tokens *fixtures.Tokens
}

func (a subjectAuthenticator) Authenticate(ctx context.Context, token model.Token) (model.Identity, error) {
	subject, ok := strings.CutPrefix(string(token), a.prefix)
	if !ok {
		return a.tokens.Authenticate(ctx, token)
	}
	identity, found := a.tokens.Lookup(subject)
	if !found {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated,
			"subject %q is not in the fixtures' tokens.csv: add a row for it, or replay with --as SUBJECT", subject)
	}
	return identity, nil
}
