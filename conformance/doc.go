// Package conformance checks a running events server against the wfevents
// contract: the routes of POST /api/v1/events/{namespace}, body handling,
// status codes and error bodies, authentication, the expression environment,
// matching, parameter encoding, the bounded pipeline and admission latency.
//
// Every check is a short program that talks to the server only over HTTP,
// so the suite runs against the in-process server of the tests, a wfevents
// binary, or another implementation of the endpoint such as Argo Workflows'
// own server. [Checks] lists the checks, and [Run] runs them against a
// [Target] and prints one line per check:
//
//	PASS body.invalid-json
//	FAIL body.trailing-bytes: sent POST /api/v1/events/argo/conformance-body {} {}, got 200 {"eventId":"…"}, want 400 with code 3
//	SKIP auth.scoped-other-namespace: needs a namespace-scoped token: give --scoped-token and --scoped-namespace
//
// # What a check needs
//
// Status codes and error bodies need only the URL and a token. Checks of the
// expression environment, of matching and of parameters need the suite's
// WorkflowTemplates (see [Resources]) in the namespace under test, and a way
// to see what an event did: the dry run of wfevents (?dryRun=All), or the
// Workflows it created, read through [Target.ListWorkflows] or the server's
// GET /api/v1/workflows/{namespace}. The suite installs its templates itself
// when [Target.InstallTemplates] is set, for example from a kubeconfig with
// [NewKubernetes]; else they must be there already, as in the fixtures
// directory testdata/fixtures. The pipeline checks need
// [Target.BlockWorkers], which only an in-process server can offer. A check
// whose needs are not met is skipped with the reason, never guessed.
//
// # Profiles
//
// In the argo profile, checks of behaviour where Argo's server is known to
// differ from the contract report XFAIL instead of FAIL, and XPASS when they
// pass anyway. Checks of what only wfevents offers (the event ID in the
// response, dry runs, health endpoints) are skipped.
package conformance
