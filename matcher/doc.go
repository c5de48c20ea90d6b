// Package matcher decides which templates an event starts and computes the
// parameters of each Workflow.
//
// # Expressions
//
// Expressions use the language of github.com/expr-lang/expr. Each one is
// compiled once per resource version, when the resource is loaded. The
// environment's names are known then, but its values have no fixed shape,
// so a compile error is found at load time and never depends on an event.
//
// Every expression sees these names:
//
//	event          the JSON body
//	payload        the same value, under the name Argo's server uses
//	metadata       "claimSet" and one key per x- header
//	discriminator  the path segment after the namespace, or ""
//	namespace      the namespace from the path, or "" for a cluster-scoped event
//
// metadata.claimSet describes the caller: sub (the user name), groups and,
// for a service account, service_account_namespace and service_account_name.
// Header keys are lowercased and each value is the list of strings received,
// so a test of one header reads metadata["x-github-event"] == ["push"].
// Headers that carry webhook secrets (x-gitlab-token, x-hook-uuid,
// x-hub-signature, x-hub-signature-256) are never present.
//
// JSON integers that fit in int64 are int64; other numbers are float64.
//
// # Missing fields
//
// A field that the event does not have is nil, not an error: on the body {},
// event.message != "" is true. Guard expressions accordingly, for example
// event.message != nil && event.message != "". Reading a field of a missing
// object, as in event.a.b when event has no a, is an error for that event;
// write event?.a?.b ?? "default" instead.
//
// # Results
//
// An event expression must return a bool. A parameter expression may return
// any value: strings are used as they are, integers exactly, floats in their
// shortest form, bools as true or false, maps and slices as compact JSON, and
// nil as the parameter's default or the empty string.
package matcher
