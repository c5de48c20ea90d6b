package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxLatency is the contract's bound on the time to any response of the
// events endpoint, which webhook senders need before they time out.
const maxLatency = 10 * time.Second

// acceptsAt returns a check that a POST of {} to path(r) gets 200.
func acceptsAt(path func(r *run) string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		req := r.post(path(r), `{}`)
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		return expectStatus(req, resp, http.StatusOK)
	}
}

// acceptsClusterScoped is acceptsAt for a cluster-scoped path, skipped when
// the token may not send cluster-scoped events.
func acceptsClusterScoped(path string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		req := r.post(path, `{}`)
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		if resp.status == http.StatusForbidden {
			return skipf("the token may not send cluster-scoped events (got 403): give a cluster-scoped --token")
		}
		return expectStatus(req, resp, http.StatusOK)
	}
}

func checkUnknownPath(ctx context.Context, r *run) error {
	requests := []request{
		r.post(eventPath(r.target.Namespace, quietDiscriminator)+"/extra", `{}`),
		r.post("/api/v1/conformance-unknown", `{}`),
	}
	return expectErrors(ctx, r, requests, http.StatusNotFound)
}

func checkMethodNotAllowed(ctx context.Context, r *run) error {
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req := request{method: method, path: eventPath(r.target.Namespace, ""), token: r.target.Token}
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		if err := expectError(req, resp, http.StatusMethodNotAllowed); err != nil {
			return err
		}
		if allow := resp.header.Values("Allow"); !slices.ContainsFunc(allow, func(value string) bool { return strings.Contains(value, http.MethodPost) }) {
			return unexpected(req, resp, "an Allow header with POST, not %q", allow)
		}
	}
	return nil
}

// expectErrors sends each request and expects status with its error body.
func expectErrors(ctx context.Context, r *run, requests []request, status int) error {
	for _, req := range requests {
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		if err := expectError(req, resp, status); err != nil {
			return err
		}
	}
	return nil
}

// bodiesRejected returns a check that each body gets status.
func bodiesRejected(status int, bodies ...string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		requests := make([]request, len(bodies))
		for i, body := range bodies {
			requests[i] = r.post(eventPath(r.target.Namespace, quietDiscriminator), body)
		}
		return expectErrors(ctx, r, requests, status)
	}
}

// bodiesAccepted returns a check that each body gets 200.
func bodiesAccepted(bodies ...string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		for _, body := range bodies {
			req := r.post(eventPath(r.target.Namespace, quietDiscriminator), body)
			resp, err := r.send(ctx, req)
			if err != nil {
				return err
			}
			if err := expectStatus(req, resp, http.StatusOK); err != nil {
				return err
			}
		}
		return nil
	}
}

func checkContentTypeIgnored(ctx context.Context, r *run) error {
	for _, contentType := range []string{"application/x-www-form-urlencoded", "text/plain", ""} {
		req := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{"message": "hello"}`)
		req.header = http.Header{"Content-Type": {contentType}}
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		if err := expectStatus(req, resp, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

// jsonString returns a JSON string document of exactly size bytes.
func jsonString(size int64) string {
	return `"` + strings.Repeat("a", int(size)-2) + `"`
}

func checkBodyAtLimit(ctx context.Context, r *run) error {
	return bodiesAccepted(jsonString(r.target.MaxBodyBytes))(ctx, r)
}

func checkBodyOverLimit(ctx context.Context, r *run) error {
	return bodiesRejected(http.StatusRequestEntityTooLarge, jsonString(r.target.MaxBodyBytes+1))(ctx, r)
}

func checkMissingToken(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
	req.token = ""
	return expectErrors(ctx, r, []request{req}, http.StatusUnauthorized)
}

func checkMalformedToken(ctx context.Context, r *run) error {
	var requests []request
	for _, authorization := range []string{"Basic Y29uZm9ybWFuY2U6c2VjcmV0", "Bearer", "Bearer ", r.target.Token} {
		req := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
		req.token = ""
		req.header = http.Header{"Authorization": {authorization}}
		requests = append(requests, req)
	}
	return expectErrors(ctx, r, requests, http.StatusUnauthorized)
}

func checkUnknownToken(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
	req.token = "conformance-unknown-" + newNonce()
	return expectErrors(ctx, r, []request{req}, http.StatusUnauthorized)
}

// needScopedToken ends a check as skipped without a namespace-scoped token.
func (r *run) needScopedToken() error {
	if r.target.ScopedToken == "" {
		return skipf("needs a namespace-scoped token: give --scoped-token and --scoped-namespace")
	}
	return nil
}

// scopedPost returns a POST of {} to path with the scoped token.
func (r *run) scopedPost(path string) request {
	req := r.post(path, `{}`)
	req.token = r.target.ScopedToken
	return req
}

func checkScopedOwnNamespace(ctx context.Context, r *run) error {
	if err := r.needScopedToken(); err != nil {
		return err
	}
	req := r.scopedPost(eventPath(r.target.ScopedNamespace, quietDiscriminator))
	resp, err := r.send(ctx, req)
	if err != nil {
		return err
	}
	return expectStatus(req, resp, http.StatusOK)
}

func checkScopedOtherNamespace(ctx context.Context, r *run) error {
	if err := r.needScopedToken(); err != nil {
		return err
	}
	other := r.target.Namespace
	if other == r.target.ScopedNamespace {
		other = "conformance-other"
	}
	requests := []request{
		r.scopedPost(eventPath(other, "")),
		r.scopedPost(eventPath(other, quietDiscriminator)),
	}
	return expectErrors(ctx, r, requests, http.StatusForbidden)
}

func checkScopedClusterScoped(ctx context.Context, r *run) error {
	if err := r.needScopedToken(); err != nil {
		return err
	}
	requests := []request{
		r.scopedPost(eventsPrefix),
		r.scopedPost(eventsPrefix + "/" + quietDiscriminator),
	}
	return expectErrors(ctx, r, requests, http.StatusForbidden)
}

func checkEventID(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
	resp, err := r.send(ctx, req)
	if err != nil {
		return err
	}
	if err := expectStatus(req, resp, http.StatusOK); err != nil {
		return err
	}
	if eventID(resp) == "" {
		return unexpected(req, resp, `a JSON object with a non-empty string "eventId"`)
	}
	return nil
}

// eventID returns the eventId field of a JSON response body, or "".
func eventID(resp *response) string {
	var body struct {
		EventID string `json:"eventId"`
	}
	if json.Unmarshal(resp.body, &body) != nil {
		return ""
	}
	return body.EventID
}

// checkErrorShape checks every error response of the run so far.
func checkErrorShape(_ context.Context, r *run) error {
	seen := 0
	for _, exchange := range r.recorded() {
		if exchange.response == nil || exchange.response.status < 400 {
			continue
		}
		seen++
		if problem := checkErrorBody(exchange.response); problem != "" {
			return unexpected(exchange.request, exchange.response, "%s", problem)
		}
	}
	if seen == 0 {
		return skipf("no error response to check: run the checks that send invalid requests too")
	}
	return nil
}

func checkNoSecretEcho(ctx context.Context, r *run) error {
	token := "conformance-secret-" + newNonce()
	unknownToken := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
	unknownToken.token = token

	gitlabSecret := "conformance-secret-" + newNonce()
	signed := r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`)
	signed.token = ""
	signed.header = http.Header{
		"X-Gitlab-Token":      {gitlabSecret},
		"X-Hub-Signature-256": {"sha256=" + gitlabSecret},
	}

	for _, sent := range []struct {
		req    request
		secret string
	}{{unknownToken, token}, {signed, gitlabSecret}} {
		resp, err := r.send(ctx, sent.req)
		if err != nil {
			return err
		}
		if resp.status == http.StatusOK {
			return unexpected(sent.req, resp, "a 4xx rejection")
		}
		echoed := strings.Contains(string(resp.body), sent.secret)
		for _, values := range resp.header {
			echoed = echoed || slices.ContainsFunc(values, func(value string) bool { return strings.Contains(value, sent.secret) })
		}
		if echoed {
			return unexpected(sent.req, resp, "a response that does not repeat the secret %q", sent.secret)
		}
	}
	return nil
}

func checkListWorkflows(ctx context.Context, r *run) error {
	path := "/api/v1/workflows/" + r.target.Namespace
	req := request{method: http.MethodGet, path: path, token: r.target.Token}
	resp, err := r.send(ctx, req)
	if err != nil {
		return err
	}
	if _, err := parseWorkflowList(resp); err != nil {
		return unexpected(req, resp, "200 with a WorkflowList (%v)", err)
	}

	anonymous := request{method: http.MethodGet, path: path}
	resp, err = r.send(ctx, anonymous)
	if err != nil {
		return err
	}
	return expectError(anonymous, resp, http.StatusUnauthorized)
}

func checkHealth(ctx context.Context, r *run) error {
	for _, path := range []string{"/healthz", "/readyz"} {
		req := request{method: http.MethodGet, path: path}
		resp, err := r.send(ctx, req)
		if err != nil {
			return err
		}
		if err := expectStatus(req, resp, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

// checkLatency checks how long every response of the events endpoint took
// in this run, the suite's probes included.
func checkLatency(_ context.Context, r *run) error {
	exchanges := r.recorded()
	if len(exchanges) == 0 {
		return skipf("no event was sent: run other checks too")
	}
	slowest := exchanges[0]
	for _, exchange := range exchanges {
		if exchange.response == nil && exchange.elapsed >= maxLatency {
			return fmt.Errorf("sent %s, got no response within %s, want one within %s", describe(exchange.request), exchange.elapsed.Round(time.Millisecond), maxLatency)
		}
		if exchange.elapsed > slowest.elapsed {
			slowest = exchange
		}
	}
	if slowest.elapsed >= maxLatency {
		return fmt.Errorf("sent %s, got %s after %s, want every response within %s",
			describe(slowest.request), describeResponse(slowest.response), slowest.elapsed.Round(time.Millisecond), maxLatency)
	}
	return nil
}
