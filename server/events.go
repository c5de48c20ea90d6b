package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// EventResponse is the body of a successful event submission. Argo's server
// sends {}, and the extra field keeps Argo clients working.
type EventResponse struct {
	EventID string `json:"eventId"`
}

// droppedHeaders never reach the queue, so a token, session cookie, webhook
// secret or signature is never stored with an event, logged, or seen by an
// expression. Signatures are checked at admission and not needed after.
var droppedHeaders = []string{
	"Authorization", "Cookie", "Proxy-Authorization",
	"X-Gitlab-Token", "X-Hook-Uuid", "X-Hub-Signature", "X-Hub-Signature-256",
}

// handleEvent admits one event: route, authenticate, authorize, read and
// parse the body, then queue it.
func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	// Route: the namespace and an optional discriminator.
	namespace, discriminator, err := parseEventPath(r.URL.EscapedPath())
	if err != nil {
		s.rejectUnread(w, r, err)
		return
	}
	if err := validateNamespace(namespace); err != nil {
		s.rejectUnread(w, r, err)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.rejectUnread(w, r, model.Errorf(model.CodeUnimplemented, "method %s is not allowed on %q: send events with POST", clip(r.Method), clip(r.URL.Path)))
		return
	}
	// Under overload, reject before the body is read and decoded, so a 503
	// costs far less than an accepted event. The connection stays open,
	// unlike other rejections of unread requests: a sender that retries
	// would otherwise pay a new connection for every 503, which in a storm
	// costs more than net/http discarding a small body. net/http still
	// closes the connection when more than 256 KiB of body is left.
	if room, ok := s.cfg.Queue.(interface{ CheckRoom() error }); ok && !s.cfg.SyncDispatch {
		if err := room.CheckRoom(); err != nil {
			s.writeError(w, r, err)
			return
		}
	}

	dryRun, err := parseDryRun(r)
	if err != nil {
		s.rejectUnread(w, r, err)
		return
	}

	// Authenticate, authorize, then read and parse the body.
	caller, payload, ok := s.admit(w, r, namespace)
	if !ok {
		return
	}

	// Queue the event. Its headers are copied, because the request's are
	// reused once the handler returns.
	headers := r.Header.Clone()
	for _, name := range droppedHeaders {
		headers.Del(name)
	}
	ev := model.Event{
		ID:            s.eventID(r, caller, namespace),
		Namespace:     namespace,
		Discriminator: discriminator,
		Payload:       payload,
		Headers:       headers,
		Caller:        caller,
		ReceivedAt:    s.cfg.Now(),
	}
	if dryRun {
		s.dryRun(w, r, ev)
		return
	}
	if s.cfg.SyncDispatch {
		s.cfg.Metrics.EventAccepted(ev.Namespace)
		s.dispatchNow(w, r, ev)
		return
	}
	if err := s.cfg.Queue.Enqueue(ev); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.cfg.Metrics.EventAccepted(ev.Namespace)

	s.cfg.Logger.Debug("event accepted", "event", ev)
	w.Header().Set("X-Event-Id", ev.ID)
	writeJSON(w, http.StatusOK, EventResponse{EventID: ev.ID})
}

// admit authenticates and authorizes the request, then reads and parses its
// body. When it returns false, it has sent the response.
//
// A request without an Authorization header is a webhook delivery, which
// admitWebhook authenticates by its signature.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, namespace string) (model.Identity, any, bool) {
	if s.isWebhookDelivery(r) {
		return s.admitWebhook(w, r, namespace)
	}

	// Authenticate and authorize before reading the body. A rejection
	// closes the connection, so an unauthenticated sender costs no more
	// than its headers.
	caller, err := s.authenticate(r)
	if err != nil {
		s.rejectUnread(w, r, err)
		return model.Identity{}, nil, false
	}
	if err := s.authorize(r, caller, namespace); err != nil {
		s.rejectUnread(w, r, err)
		return model.Identity{}, nil, false
	}

	// Read and parse the body, never past the limit.
	payload, err := s.readPayload(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return model.Identity{}, nil, false
	}
	return caller, payload, true
}

// parseEventPath splits the escaped path /api/v1/events/{namespace}[/{discriminator}]
// and unescapes each segment, so a discriminator may contain an escaped
// slash (%2F). A trailing slash after the namespace is the same as none.
func parseEventPath(escapedPath string) (namespace, discriminator string, err error) {
	rest := strings.TrimPrefix(escapedPath, eventsPrefix)
	segments := strings.Split(rest, "/")
	if len(segments) > 2 {
		return "", "", model.Errorf(model.CodeNotFound, "path %q has too many segments: use /api/v1/events/{namespace} or /api/v1/events/{namespace}/{discriminator}", clip(escapedPath))
	}
	for i, segment := range segments {
		if segments[i], err = url.PathUnescape(segment); err != nil {
			return "", "", model.Errorf(model.CodeInvalid, "path %q is not validly escaped: %v", clip(escapedPath), err)
		}
	}
	if len(segments) == 1 {
		return segments[0], "", nil
	}
	return segments[0], segments[1], nil
}

// authorize checks that caller may create Workflows in namespace, within
// the admission deadline.
func (s *Server) authorize(r *http.Request, caller model.Identity, namespace string) error {
	allowed, found := false, false
	if memory, ok := s.cfg.Authorizer.(MemoryAuthorizer); ok {
		allowed, found = memory.MayCreateWorkflowsFromMemory(caller, namespace)
	}
	if !found {
		var err error
		allowed, err = withDeadline(r.Context(), s.cfg.AdmissionTimeout, "authorization", func(ctx context.Context) (bool, error) {
			return s.cfg.Authorizer.MayCreateWorkflows(ctx, caller, namespace)
		})
		if err != nil {
			return err
		}
	}
	if allowed {
		return nil
	}
	if namespace == "" {
		return model.Errorf(model.CodePermissionDenied, "caller %q may not send cluster-scoped events: only a caller that may create workflows in every namespace may omit the namespace", caller.Subject)
	}
	return model.Errorf(model.CodePermissionDenied, "caller %q may not send events to namespace %q: it may not create workflows there", caller.Subject, namespace)
}

// authenticate reads the bearer token and resolves it within the admission
// deadline. When the authenticator does not return in time, even one that
// ignores its context, the sender gets a 503 at the deadline, so a slow
// identity service never makes the sender wait.
func (s *Server) authenticate(r *http.Request) (model.Identity, error) {
	if len(r.Header.Values("Authorization")) > 1 {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated, "more than one Authorization header: send exactly one, Authorization: Bearer <token>")
	}
	header := r.Header.Get("Authorization")
	if header == "" {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated, "missing Authorization header: send Authorization: Bearer <token>")
	}
	scheme, token, found := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated, "malformed Authorization header: send Authorization: Bearer <token>")
	}

	caller, err := s.resolve(r, model.Token(token))
	if err != nil {
		return model.Identity{}, err
	}
	notifyAuthenticated(r, caller)
	return caller, nil
}

// resolve returns the identity of token: from the authenticator's memory
// when it has one, else by a call bounded by the admission deadline.
func (s *Server) resolve(r *http.Request, token model.Token) (model.Identity, error) {
	if memory, ok := s.cfg.Authenticator.(MemoryAuthenticator); ok {
		if caller, found, err := memory.AuthenticateFromMemory(token); found {
			return caller, err
		}
	}
	return withDeadline(r.Context(), s.cfg.AdmissionTimeout, "authentication", func(ctx context.Context) (model.Identity, error) {
		return s.cfg.Authenticator.Authenticate(ctx, token)
	})
}

// withDeadline runs call with a context that ends after timeout, and returns
// its result, or a CodeUnavailable error naming the step once that context is
// done, even when call ignores its context and goes on.
func withDeadline[T any](parent context.Context, timeout time.Duration, step string, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	type result struct {
		value T
		err   error
	}
	done := make(chan result, 1)
	go func() {
		value, err := call(ctx)
		done <- result{value, err}
	}()

	select {
	case res := <-done:
		if res.err == nil || ctx.Err() == nil {
			return res.value, res.err
		}
	case <-ctx.Done():
	}
	var zero T
	return zero, &model.Error{
		Code:    model.CodeUnavailable,
		Message: fmt.Sprintf("%s did not finish within %s: retry later", step, timeout),
		Err:     ctx.Err(),
	}
}

// readPayload reads the body up to the limit and decodes it.
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodePayload(body)
}

// readBody reads the raw body, never past the limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if maxErr, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, &model.Error{
			Code:    model.CodeResourceExhausted,
			Message: fmt.Sprintf("request body is larger than the limit of %d bytes: send a smaller event or raise --max-body-bytes", maxErr.Limit),
			Err:     err,
		}
	}
	if err != nil {
		if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
			return nil, &model.Error{Code: model.CodeInvalid, Message: "read request body timed out: send the whole body within the server's read timeout", Err: err}
		}
		return nil, &model.Error{Code: model.CodeInvalid, Message: "read request body failed", Err: err}
	}
	return body, nil
}

// decodePayload decodes a body as one JSON value.
func decodePayload(body []byte) (any, error) {
	payload, err := matcher.DecodeJSON(body)
	if err != nil {
		// The decoder's message names the offending byte, which is what the
		// sender needs, so it is the whole message.
		return nil, model.Errorf(model.CodeInvalid, "request body must be one JSON value: %v", err)
	}
	return payload, nil
}

// validateNamespace rejects a namespace that Kubernetes would not accept, so
// the sender learns of a typo at once. The empty namespace is valid.
func validateNamespace(namespace string) error {
	if errs := validation.IsDNS1123Label(namespace); namespace != "" && len(errs) > 0 {
		return model.Errorf(model.CodeInvalid, "namespace %q in path is not valid: %s", clip(namespace), strings.Join(errs, "; "))
	}
	return nil
}

// rejectUnread sends err for a request whose body was not read. It closes the
// connection, because net/http would otherwise read the rest of the body to
// reuse the connection, which a slow or hostile sender can make last long.
func (s *Server) rejectUnread(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	s.writeError(w, r, err)
}

// maxEchoedLength bounds how much of a request value an error message
// repeats, so a huge path does not make a huge response.
const maxEchoedLength = 128

// clip cuts s to maxEchoedLength bytes for use in a message.
func clip(s string) string {
	if len(s) <= maxEchoedLength {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:maxEchoedLength], len(s))
}

// parseDryRun reads the dryRun query parameter. As in Kubernetes, the only
// value is All.
func parseDryRun(r *http.Request) (bool, error) {
	values, present := r.URL.Query()["dryRun"]
	if !present {
		return false, nil
	}
	if len(values) == 1 && values[0] == "All" {
		return true, nil
	}
	return false, model.Errorf(model.CodeInvalid, "invalid dryRun %q: the only value is All", clip(strings.Join(values, ",")))
}

// deliveryHeaders carry an ID that a webhook sender keeps when it redelivers
// the same event: GitHub, GitLab and Bitbucket Cloud, in that order.
var deliveryHeaders = []string{"X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Request-UUID"}

// eventID returns the ID of the event in r. A delivery ID from the sender
// becomes the event ID, so a redelivered webhook derives the same Workflow
// names and creates nothing new. A generic Idempotency-Key is scoped to the
// caller and namespace, because unlike the providers' IDs it is not unique
// across senders. Without either, the ID is new.
func (s *Server) eventID(r *http.Request, caller model.Identity, namespace string) string {
	for _, name := range deliveryHeaders {
		if value := r.Header.Get(name); value != "" {
			if isLabelSafe(value) {
				return value
			}
			return "d-" + shortHash(name, value)
		}
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		return "k-" + shortHash(caller.Subject, namespace, key)
	}
	return s.cfg.NewEventID()
}

// isLabelSafe reports whether s can be a Kubernetes label value as it is, so
// the event ID label on Workflows equals the ID.
func isLabelSafe(s string) bool {
	return len(validation.IsValidLabelValue(s)) == 0 && s != ""
}

// shortHash returns 40 hex digits of the SHA-256 of parts, joined by NUL.
func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:40]
}
