package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
)

// fixturesSubject is the caller the reference template of
// testdata/fixtures expects, the subject of admin-token.
const fixturesSubject = "admin"

// envBody is the body of the shared environment observation.
const envBody = `{"message": "hello", "count": 2}`

// secretHeaderNames are the headers that carry webhook secrets or
// signatures, which expressions must never see.
var secretHeaderNames = []string{"X-Gitlab-Token", "X-Hook-Uuid", "X-Hub-Signature", "X-Hub-Signature-256"}

// observeEnvironment returns what conformance-env shows of an event with
// envBody and headers that test the header rules: a name in mixed case, a
// repeated header, a header without the x- prefix, and every secret header.
func (r *run) observeEnvironment(ctx context.Context) (observation, error) {
	return r.observeOnce("env", func() (observation, error) {
		req := r.post(eventPath(r.target.Namespace, envTemplate), envBody)
		req.header = http.Header{
			// A key Go would not send in this case, set directly.
			"X-CONFORMANCE-Upper": {"A"},
			"X-Conformance-Multi": {"one", "two"},
			"Conformance-Plain":   {"plain"},
		}
		for _, name := range secretHeaderNames {
			req.header.Set(name, "conformance-secret")
		}
		return r.observe(ctx, req, envTemplate, preferDryRun)
	})
}

// environmentMetadata returns the metadata the environment observation
// shows, decoded.
func (r *run) environmentMetadata(ctx context.Context) (map[string]any, observation, error) {
	env, err := r.observeEnvironment(ctx)
	if err != nil {
		return nil, env, err
	}
	var metadata map[string]any
	if err := json.Unmarshal([]byte(env.parameters["metadata"]), &metadata); err != nil {
		return nil, env, wrongParameter(env, envTemplate, "metadata", fmt.Sprintf("the JSON of metadata (%v)", err))
	}
	return metadata, env, nil
}

// wrongParameter is the error of a check that found a parameter value it
// did not expect.
func wrongParameter(obs observation, resource, name, want string) error {
	got, present := obs.parameters[name]
	if !present {
		return fmt.Errorf("sent %s, got a %s from %s without parameter %s, want %s", describe(obs.sent), obs.via, resource, name, want)
	}
	return fmt.Errorf("sent %s, got a %s from %s with parameter %s = %q, want %s", describe(obs.sent), obs.via, resource, name, got, want)
}

// expectParameter checks that the parameter name of obs is want.
func expectParameter(obs observation, resource, name, want string) error {
	if got, present := obs.parameters[name]; !present || got != want {
		return wrongParameter(obs, resource, name, fmt.Sprintf("%q", want))
	}
	return nil
}

// expectJSONParameter checks that the parameter name of obs is JSON equal
// to want.
func expectJSONParameter(obs observation, resource, name, want string) error {
	if !jsonEqual(obs.parameters[name], want) {
		return wrongParameter(obs, resource, name, "the JSON "+want)
	}
	return nil
}

// jsonEqual reports whether a and b are JSON documents of equal value.
func jsonEqual(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func checkEventAndPayload(ctx context.Context, r *run) error {
	env, err := r.observeEnvironment(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{"event", "payload"} {
		if err := expectJSONParameter(env, envTemplate, name, envBody); err != nil {
			return err
		}
	}
	return nil
}

func checkDiscriminatorAndNamespace(ctx context.Context, r *run) error {
	env, err := r.observeEnvironment(ctx)
	if err != nil {
		return err
	}
	if err := expectParameter(env, envTemplate, "discriminator", envTemplate); err != nil {
		return err
	}
	return expectParameter(env, envTemplate, "namespace", r.target.Namespace)
}

func checkClaimSet(ctx context.Context, r *run) error {
	metadata, env, err := r.environmentMetadata(ctx)
	if err != nil {
		return err
	}
	claims, _ := metadata["claimSet"].(map[string]any)
	subject, _ := claims["sub"].(string)
	groups, isList := claims["groups"].([]any)
	if subject == "" || !isList {
		return wrongParameter(env, envTemplate, "metadata", `metadata.claimSet with a non-empty string "sub" and a list "groups"`)
	}
	for _, group := range groups {
		if _, isString := group.(string); !isString {
			return wrongParameter(env, envTemplate, "metadata", "metadata.claimSet.groups of strings")
		}
	}
	return nil
}

func checkHeaderNamesLowercased(ctx context.Context, r *run) error {
	metadata, env, err := r.environmentMetadata(ctx)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(metadata["x-conformance-upper"], []any{"A"}) {
		return wrongParameter(env, envTemplate, "metadata", `metadata["x-conformance-upper"] == ["A"] for the header X-CONFORMANCE-Upper: A`)
	}
	for key := range metadata {
		if key != "claimSet" && key != strings.ToLower(key) {
			return wrongParameter(env, envTemplate, "metadata", fmt.Sprintf("lowercase header keys, not %q", key))
		}
	}
	return nil
}

func checkHeaderValuesListed(ctx context.Context, r *run) error {
	metadata, env, err := r.environmentMetadata(ctx)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(metadata["x-conformance-multi"], []any{"one", "two"}) {
		return wrongParameter(env, envTemplate, "metadata", `metadata["x-conformance-multi"] == ["one", "two"] for the header sent twice`)
	}
	return nil
}

func checkOnlyXHeaders(ctx context.Context, r *run) error {
	metadata, env, err := r.environmentMetadata(ctx)
	if err != nil {
		return err
	}
	for key := range metadata {
		if key != "claimSet" && !strings.HasPrefix(strings.ToLower(key), "x-") {
			return wrongParameter(env, envTemplate, "metadata", fmt.Sprintf("only claimSet and x- headers, not %q", key))
		}
	}
	return nil
}

func checkSecretHeadersHidden(ctx context.Context, r *run) error {
	metadata, env, err := r.environmentMetadata(ctx)
	if err != nil {
		return err
	}
	for _, name := range secretHeaderNames {
		if _, present := metadata[strings.ToLower(name)]; present {
			return wrongParameter(env, envTemplate, "metadata", fmt.Sprintf("no key %q, since %s carries a secret", strings.ToLower(name), name))
		}
	}
	return nil
}

func checkAnyJSONValueSeen(ctx context.Context, r *run) error {
	values := []struct {
		body string
		want func(obs observation) error
	}{
		{body: `{"b": [1, 2], "a": "x"}`, want: func(obs observation) error {
			return expectJSONParameter(obs, envTemplate, "event", `{"b": [1, 2], "a": "x"}`)
		}},
		{body: `[1, "two", null, true]`, want: func(obs observation) error {
			return expectJSONParameter(obs, envTemplate, "event", `[1, "two", null, true]`)
		}},
		{body: `"hello"`, want: func(obs observation) error { return expectParameter(obs, envTemplate, "event", "hello") }},
		{body: `42`, want: func(obs observation) error { return expectParameter(obs, envTemplate, "event", "42") }},
		{body: `true`, want: func(obs observation) error { return expectParameter(obs, envTemplate, "event", "true") }},
	}
	for _, value := range values {
		req := r.post(eventPath(r.target.Namespace, envTemplate), value.body)
		// curl -d sends this Content-Type, and the body is JSON anyway.
		req.header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		obs, err := r.observe(ctx, req, envTemplate, preferDryRun)
		if err != nil {
			return err
		}
		if err := value.want(obs); err != nil {
			return err
		}
	}
	return nil
}

func checkEmptyBodyNull(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, nullTemplate), "")
	obs, err := r.observe(ctx, req, nullTemplate, preferDryRun)
	if err != nil {
		return err
	}
	return expectParameter(obs, nullTemplate, "isNull", "true")
}

// observeFields returns what conformance-fields shows of an event with a
// large integer and without the fields it reads.
func (r *run) observeFields(ctx context.Context) (observation, error) {
	return r.observeOnce("fields", func() (observation, error) {
		req := r.post(eventPath(r.target.Namespace, fieldsTemplate), `{"large": 9007199254740993}`)
		return r.observe(ctx, req, fieldsTemplate, preferDryRun)
	})
}

func checkExactIntegers(ctx context.Context, r *run) error {
	fields, err := r.observeFields(ctx)
	if err != nil {
		return err
	}
	// 2^53 + 1 is the smallest integer that a float64 cannot hold, and
	// the difference is 0 in float64 arithmetic.
	if err := expectParameter(fields, fieldsTemplate, "large", "9007199254740993"); err != nil {
		return err
	}
	return expectParameter(fields, fieldsTemplate, "largeMinus", "1")
}

func checkMissingFieldNil(ctx context.Context, r *run) error {
	fields, err := r.observeFields(ctx)
	if err != nil {
		return err
	}
	want := map[string]string{"absentIsNil": "true", "messageNotEmpty": "true", "chained": "fallback"}
	for _, name := range sortedKeys(want) {
		if err := expectParameter(fields, fieldsTemplate, name, want[name]); err != nil {
			return err
		}
	}
	return nil
}

// referenceRetry is how long the reference check waits for a Workflow
// before it sends its event again, on a server without a dry run where it
// cannot see when its freshly installed template has loaded.
const referenceRetry = time.Second

func checkReferenceExample(ctx context.Context, r *run) error {
	if !r.installed && !r.dryRun && r.listWorkflows != nil {
		return skipf("without a dry run the suite cannot tell whether the server has %s: give --kubeconfig so the suite installs it", referenceTemplate)
	}
	if err := r.needResources(referenceTemplate); err != nil {
		return err
	}
	if r.subject == "" {
		return skipf("the caller's subject is unknown, because the environment could not be observed")
	}
	if !r.installed && r.subject != fixturesSubject {
		return skipf("the reference template of the fixtures expects the subject %q, and the token's is %q: give --kubeconfig so the suite installs one for it", fixturesSubject, r.subject)
	}

	req := r.post(eventPath(r.target.Namespace, ""), `{"message": "hello events"}`)
	req.header = http.Header{"X-Argo-E2E": {"true"}}
	var obs observation
	var err error
	if r.installed && !r.dryRun {
		obs, err = r.observeUntilLoaded(ctx, req, referenceTemplate)
	} else {
		obs, err = r.observe(ctx, req, referenceTemplate, preferCreated)
	}
	if err != nil {
		return err
	}
	return expectParameter(obs, referenceTemplate, "message", "hello events")
}

// observeUntilLoaded sends req again, each time with a new nonce, until one
// creates a Workflow from resource or the wait timeout ends.
func (r *run) observeUntilLoaded(ctx context.Context, req request, resource string) (observation, error) {
	deadline := time.Now().Add(r.target.WaitTimeout)
	for {
		obs, err := r.observeCreated(ctx, req, resource, min(referenceRetry, time.Until(deadline)))
		if !errors.Is(err, errNoWorkflow) || time.Until(deadline) <= 0 || ctx.Err() != nil {
			return obs, err
		}
	}
}

// paramsBody is the event of the parameter checks, with paramsText in it.
const paramsBody = `{"text": "say \"hi\"\nto 100% of you\t\\ <b>&é", "integer": 42, "negative": -7,
 "float": 2.5, "fraction": 0.1, "truth": true, "falsehood": false,
 "object": {"b": [1, 2], "a": "<x>"}, "array": [1, "two", null, {"k": "v"}]}`

const paramsText = "say \"hi\"\nto 100% of you\t\\ <b>&é"

// observeParams returns the Workflow conformance-params creates for
// paramsBody.
func (r *run) observeParams(ctx context.Context) (observation, error) {
	return r.observeOnce("params", func() (observation, error) {
		req := r.post(eventPath(r.target.Namespace, paramsTemplate), paramsBody)
		return r.observe(ctx, req, paramsTemplate, preferCreated)
	})
}

// expectParams returns a check that parameters of conformance-params have
// the values of want, by name.
func expectParams(want map[string]string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		params, err := r.observeParams(ctx)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(want) {
			if err := expectParameter(params, paramsTemplate, name, want[name]); err != nil {
				return err
			}
		}
		return nil
	}
}

// expectCompactParam returns a check that a parameter of
// conformance-params is compact JSON of the value want, with no HTML
// escapes.
func expectCompactParam(name, want string) func(context.Context, *run) error {
	return func(ctx context.Context, r *run) error {
		params, err := r.observeParams(ctx)
		if err != nil {
			return err
		}
		got := params.parameters[name]
		var compact bytes.Buffer
		compactErr := json.Compact(&compact, []byte(got))
		if !jsonEqual(got, want) || compactErr != nil || compact.String() != got || strings.Contains(got, `\u00`) {
			return wrongParameter(params, paramsTemplate, name, "compact JSON of "+want+", with < and > as they are")
		}
		return nil
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}
