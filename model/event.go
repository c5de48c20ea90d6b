package model

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// Event is one JSON document received on the events endpoint, with what the
// server learned about it at admission.
//
// An Event is immutable once it is queued: workers on several goroutines read
// it, so nothing may change its maps or slices after Enqueue.
type Event struct {
	// ID identifies the event in responses, logs and the labels of every
	// Workflow it creates.
	ID string

	// Namespace is the namespace from the request path. The empty string
	// marks a cluster-scoped event.
	Namespace string

	// Discriminator is the path segment after the namespace, or "".
	Discriminator string

	// Payload is the decoded JSON body: nil, bool, int64, float64, string,
	// []any or map[string]any. Integers that fit in int64 are int64.
	Payload any

	// Headers are the request headers as received, keyed by canonical name.
	// The expression environment exposes a filtered view of them.
	Headers map[string][]string

	// Caller is the authenticated sender.
	Caller Identity

	// ReceivedAt is when admission accepted the event.
	ReceivedAt time.Time
}

// LogValue identifies the event in log lines without its payload or headers,
// which can carry personal data.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("event_id", e.ID),
		slog.String("namespace", e.Namespace),
		slog.String("discriminator", e.Discriminator),
		slog.String("subject", e.Caller.Subject),
	)
}

// Identity is an authenticated caller.
type Identity struct {
	// Subject is the user name, such as "admin" or
	// "system:serviceaccount:argo:github".
	Subject string

	// UID is the user's unique ID, when the authenticator provides one.
	UID string

	// Groups are the caller's groups, in the order the authenticator gave.
	Groups []string

	// Email and PreferredUsername are the caller's, when the authenticator
	// provides them. They become creator labels on created Workflows.
	Email             string
	PreferredUsername string

	// Namespaces lists where the caller may submit events. A nil slice
	// with AllNamespaces false allows none.
	Namespaces []string

	// AllNamespaces marks a cluster-scoped caller, which may use every
	// namespace and send cluster-scoped events.
	AllNamespaces bool
}

// MayUse reports whether the caller may submit events that create Workflows
// in namespace. Only a cluster-scoped caller may use the empty namespace.
func (id Identity) MayUse(namespace string) bool {
	if id.AllNamespaces {
		return true
	}
	if namespace == "" {
		return false
	}
	return slices.Contains(id.Namespaces, namespace)
}

// Token is a bearer token. Its String and LogValue methods redact it, so a
// token passed to a logger or a format verb by mistake prints no secret.
type Token string

// String returns a fixed placeholder instead of the token.
func (Token) String() string { return "REDACTED" }

// LogValue returns a fixed placeholder instead of the token.
func (Token) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// GoString returns a fixed placeholder for the %#v verb.
func (Token) GoString() string { return `model.Token("REDACTED")` }

// Authorizer decides whether a caller may create Workflows in a namespace.
// For the empty namespace it decides whether the caller may create them in
// every namespace, which is what a cluster-scoped event requires.
type Authorizer interface {
	MayCreateWorkflows(ctx context.Context, caller Identity, namespace string) (bool, error)
}
