package server

import (
	"context"
	"net/http"

	"github.com/wfevents/wfevents/model"
)

// authenticatedHookKey is the context key of the hook set by
// WithAuthenticatedHook.
type authenticatedHookKey struct{}

// WithAuthenticatedHook returns a copy of ctx that makes the server call hook
// with the subject of the caller once it has authenticated the request: the
// token's subject, or system:serviceaccount:<namespace>:<name> for a verified
// webhook delivery. Middleware that records requests gets the caller this
// way, without a response header, and never receives the token.
//
// The server calls hook at most once per request, before it writes the
// response, on the goroutine that runs its ServeHTTP. It does not call hook
// when authentication fails or times out.
func WithAuthenticatedHook(ctx context.Context, hook func(subject string)) context.Context {
	return context.WithValue(ctx, authenticatedHookKey{}, hook)
}

// notifyAuthenticated passes the subject of caller to the hook in r's context,
// if there is one.
func notifyAuthenticated(r *http.Request, caller model.Identity) {
	if hook, ok := r.Context().Value(authenticatedHookKey{}).(func(string)); ok && hook != nil {
		hook(caller.Subject)
	}
}
