package matcher

import (
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
)

var testRef = model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: "event-consumer"}

// referenceExpression is the event expression of the reference example.
const referenceExpression = `metadata.claimSet.sub == "admin" && event.message != "" && metadata["x-argo-e2e"] == ["true"]`

func ptr(s string) *string { return &s }

// compileTemplate compiles a template of testRef and fails the test if it
// does not compile.
func compileTemplate(t testing.TB, expression string, parameters ...model.Parameter) *Program {
	t.Helper()
	program, err := Compile(model.Template{Ref: testRef, Expression: expression, Parameters: parameters})
	require.NoError(t, err)
	return program
}

// envFor decodes body and builds the environment of an event to namespace
// argo with the given caller and headers.
func envFor(t testing.TB, body, subject string, headers map[string][]string) *Env {
	t.Helper()
	payload, err := DecodeJSON([]byte(body))
	require.NoError(t, err)
	return NewEnv(model.Event{
		ID:            "ev-1",
		Namespace:     "argo",
		Discriminator: "github",
		Payload:       payload,
		Headers:       headers,
		Caller:        model.Identity{Subject: subject},
	})
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name           string
		template       model.Template
		wantField      string
		wantExpression string
		wantMessage    string
	}{
		{
			name:           "selector syntax",
			template:       model.Template{Ref: testRef, Expression: `event.message ==`},
			wantField:      "spec.event.expression",
			wantExpression: `event.message ==`,
			wantMessage:    "unexpected token EOF (1:16)",
		},
		{
			name:           "selector unknown name",
			template:       model.Template{Ref: testRef, Expression: `foo == 1`},
			wantField:      "spec.event.expression",
			wantExpression: `foo == 1`,
			wantMessage:    "unknown name foo (1:1)",
		},
		{
			name: "parameter syntax",
			template: model.Template{
				Ref:        testRef,
				Expression: "true",
				Parameters: []model.Parameter{
					{Name: "fixed", Value: ptr("v")},
					{Name: "good", Expression: "event.message"},
					{Name: "bad", Expression: "event.message +"},
				},
			},
			wantField:      "spec.arguments.parameters[2].valueFrom.expression",
			wantExpression: "event.message +",
			wantMessage:    "unexpected token EOF (1:15)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			program, err := Compile(tt.template)

			assert.Nil(t, program)
			var compileErr *CompileError
			require.ErrorAs(t, err, &compileErr)
			assert.Equal(t, tt.template.Ref, compileErr.Ref)
			assert.Equal(t, tt.wantField, compileErr.Field)
			assert.Equal(t, tt.wantExpression, compileErr.Expression)
			assert.Contains(t, err.Error(), "compile "+tt.wantField+" of WorkflowTemplate/argo/event-consumer")
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.NotNil(t, errors.Unwrap(err), "expr's error is wrapped")
		})
	}
}

// Expressions compile whatever shape events have, because the environment's
// event fields have no fixed type.
func TestCompileUnknownShape(t *testing.T) {
	for _, expression := range []string{
		`payload.x.y == 1`,
		`event[0] == "a"`,
		`len(event.items) > 2 && event.items[0].name startsWith "v"`,
		`metadata["x-anything"][0] == "b"`,
		`discriminator + namespace != ""`,
	} {
		_, err := Compile(model.Template{Ref: testRef, Expression: expression})

		assert.NoError(t, err, "expression %s", expression)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name       string
		expression string
		body       string
		headers    map[string][]string
		want       bool
	}{
		{name: "true literal", expression: "true", body: "{}", want: true},
		{name: "false literal", expression: "false", body: "{}", want: false},
		{name: "field equal", expression: `event.message == "hi"`, body: `{"message": "hi"}`, want: true},
		{name: "field differs", expression: `event.message == "hi"`, body: `{"message": "ho"}`, want: false},
		{name: "payload alias", expression: `payload.message == event.message`, body: `{"message": "hi"}`, want: true},
		{name: "missing field is not empty", expression: `event.message != ""`, body: `{}`, want: true},
		{name: "guarded missing field", expression: `event.message != nil && event.message != ""`, body: `{}`, want: false},
		{name: "optional chaining", expression: `(event?.a?.b ?? "x") == "x"`, body: `{}`, want: true},
		{name: "null body", expression: `event == nil`, body: ``, want: true},
		{name: "array body", expression: `event[1] == "b"`, body: `["a", "b"]`, want: true},
		{name: "int above 2^53 exact", expression: `event.id == 9007199254740993`, body: `{"id": 9007199254740993}`, want: true},
		{name: "int above 2^53 neighbour", expression: `event.id == 9007199254740992`, body: `{"id": 9007199254740993}`, want: false},
		{name: "discriminator", expression: `discriminator == "github"`, body: `{}`, want: true},
		{name: "namespace", expression: `namespace == "argo"`, body: `{}`, want: true},
		{
			name:       "header list",
			expression: `metadata["x-github-event"] == ["push"]`,
			body:       `{}`,
			headers:    map[string][]string{"X-Github-Event": {"push"}},
			want:       true,
		},
		{
			name:       "signature header hidden",
			expression: `metadata["x-hub-signature-256"] == nil`,
			body:       `{}`,
			headers:    map[string][]string{"X-Hub-Signature-256": {"sha256=abc"}},
			want:       true,
		},
		{
			name:       "service account claims",
			expression: `metadata.claimSet.service_account_namespace == "argo" && metadata.claimSet.service_account_name == "github"`,
			body:       `{}`,
			want:       true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			program := compileTemplate(t, tt.expression)
			env := envFor(t, tt.body, "system:serviceaccount:argo:github", tt.headers)

			got, err := program.Match(env)

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestMatchErrors(t *testing.T) {
	tests := []struct {
		name        string
		expression  string
		body        string
		wantMessage string
	}{
		{name: "string result", expression: `event.message`, body: `{"message": "hi"}`, wantMessage: "result is string, want bool"},
		{name: "int result", expression: `1`, body: `{}`, wantMessage: "result is int, want bool"},
		{name: "int64 result", expression: `event.n`, body: `{"n": 2}`, wantMessage: "result is int64, want bool"},
		{name: "nil result", expression: `event.missing`, body: `{}`, wantMessage: "result is <nil>, want bool"},
		{name: "field of missing object", expression: `event.a.b == 1`, body: `{}`, wantMessage: "cannot fetch b from <nil>"},
		{name: "index out of range", expression: `event[3] == 1`, body: `[1]`, wantMessage: "index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			program := compileTemplate(t, tt.expression)

			got, err := program.Match(envFor(t, tt.body, "admin", nil))

			assert.False(t, got)
			var evalErr *EvalError
			require.ErrorAs(t, err, &evalErr)
			assert.Equal(t, testRef, evalErr.Ref)
			assert.Equal(t, "spec.event.expression", evalErr.Field)
			assert.Contains(t, err.Error(), "evaluate spec.event.expression of WorkflowTemplate/argo/event-consumer")
			assert.Contains(t, err.Error(), tt.wantMessage)
		})
	}
}

// Keys quoted with strconv.Quote reach the payload unchanged, because expr
// string literals accept Go's escapes.
func TestMatchQuotedKeys(t *testing.T) {
	for _, key := range []string{
		`a"b`, "line\nbreak", "cr\rlf", `back\slash`, "tab\t", "é", "🎉", "\u2028", "nul\x00", "del\x7f", "`", "'", "", "a.b", "\ufeff",
	} {
		payload := map[string]any{key: "ok"}
		expression := "event[" + strconv.Quote(key) + `] == "ok"`
		program, err := Compile(model.Template{Ref: testRef, Expression: expression})
		require.NoError(t, err, "expression %s", expression)

		got, err := program.Match(NewEnv(model.Event{Payload: payload}))

		require.NoError(t, err, "expression %s", expression)
		assert.True(t, got, "expression %s", expression)
	}
}

func TestReferenceExample(t *testing.T) {
	e2eHeader := http.CanonicalHeaderKey("X-Argo-E2E")
	tests := []struct {
		name        string
		subject     string
		headers     map[string][]string
		body        string
		wantMatch   bool
		wantMessage string
	}{
		{
			name:        "admin with header",
			subject:     "admin",
			headers:     map[string][]string{e2eHeader: {"true"}, "Content-Type": {"application/x-www-form-urlencoded"}},
			body:        `{"message": "hello events"}`,
			wantMatch:   true,
			wantMessage: "hello events",
		},
		{
			name:        "header spelled in lowercase",
			subject:     "admin",
			headers:     map[string][]string{"x-argo-e2e": {"true"}},
			body:        `{"message": "hello events"}`,
			wantMatch:   true,
			wantMessage: "hello events",
		},
		{
			// event.message != "" is true for a missing message, as documented.
			name:      "admin without message",
			subject:   "admin",
			headers:   map[string][]string{e2eHeader: {"true"}},
			body:      `{}`,
			wantMatch: true,
		},
		{name: "other caller", subject: "alice", headers: map[string][]string{e2eHeader: {"true"}}, body: `{"message": "hello events"}`},
		{name: "service account caller", subject: "system:serviceaccount:argo:admin", headers: map[string][]string{e2eHeader: {"true"}}, body: `{"message": "hello events"}`},
		{name: "header missing", subject: "admin", body: `{"message": "hello events"}`},
		{name: "header false", subject: "admin", headers: map[string][]string{e2eHeader: {"false"}}, body: `{"message": "hello events"}`},
		{name: "header sent twice", subject: "admin", headers: map[string][]string{e2eHeader: {"true", "true"}}, body: `{"message": "hello events"}`},
		{name: "empty message", subject: "admin", headers: map[string][]string{e2eHeader: {"true"}}, body: `{"message": ""}`},
	}
	program := compileTemplate(t, referenceExpression, model.Parameter{Name: "message", Expression: "event.message"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := envFor(t, tt.body, tt.subject, tt.headers)

			matched, err := program.Match(env)

			require.NoError(t, err)
			assert.Equal(t, tt.wantMatch, matched)
			if !tt.wantMatch {
				return
			}
			parameters, err := program.Parameters(env)
			require.NoError(t, err)
			assert.Equal(t, []model.ParameterValue{{Name: "message", Value: tt.wantMessage}}, parameters)
		})
	}
}

func TestParameters(t *testing.T) {
	program := compileTemplate(t, "true",
		model.Parameter{Name: "fixed", Value: ptr("v1")},
		model.Parameter{Name: "big-id", Expression: "event.id"},
		model.Parameter{Name: "missing-with-default", Expression: "event.missing", Default: ptr("fallback")},
		model.Parameter{Name: "missing", Expression: "event.missing"},
		model.Parameter{Name: "default-only", Default: ptr("d")},
		model.Parameter{Name: "empty"},
		model.Parameter{Name: "text", Expression: "event.text", Default: ptr("unused")},
		model.Parameter{Name: "sum", Expression: "1 + 2"},
		model.Parameter{Name: "ratio", Expression: "event.ratio"},
		model.Parameter{Name: "flag", Expression: "event.flag"},
		model.Parameter{Name: "object", Expression: "event.object"},
		model.Parameter{Name: "header", Expression: `metadata["x-github-event"]`},
		model.Parameter{Name: "fixed-and-expression", Value: ptr("ignored"), Expression: `"computed"`},
	)
	env := envFor(t,
		`{"id": 9007199254740993, "text": "say \"hi\"\n100%", "ratio": 0.1, "flag": false, "object": {"b": [1, "<a&b>"], "a": null}}`,
		"admin",
		map[string][]string{"X-Github-Event": {"push"}},
	)

	got, err := program.Parameters(env)

	require.NoError(t, err)
	want := []model.ParameterValue{
		{Name: "fixed", Value: "v1"},
		{Name: "big-id", Value: "9007199254740993"},
		{Name: "missing-with-default", Value: "fallback"},
		{Name: "missing", Value: ""},
		{Name: "default-only", Value: "d"},
		{Name: "empty", Value: ""},
		{Name: "text", Value: "say \"hi\"\n100%"},
		{Name: "sum", Value: "3"},
		{Name: "ratio", Value: "0.1"},
		{Name: "flag", Value: "false"},
		{Name: "object", Value: `{"a":null,"b":[1,"<a&b>"]}`},
		{Name: "header", Value: `["push"]`},
		{Name: "fixed-and-expression", Value: "computed"},
	}
	assert.Equal(t, want, got)
}

func TestParametersNone(t *testing.T) {
	program := compileTemplate(t, "true")

	got, err := program.Parameters(envFor(t, "{}", "admin", nil))

	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestParametersEvalError(t *testing.T) {
	program := compileTemplate(t, "true",
		model.Parameter{Name: "ok", Expression: "event.message"},
		model.Parameter{Name: "broken", Expression: "event.a.b"},
	)

	got, err := program.Parameters(envFor(t, `{"message": "hi"}`, "admin", nil))

	assert.Nil(t, got)
	var evalErr *EvalError
	require.ErrorAs(t, err, &evalErr)
	assert.Equal(t, testRef, evalErr.Ref)
	assert.Equal(t, "spec.arguments.parameters[1].valueFrom.expression", evalErr.Field)
	assert.Contains(t, err.Error(), "cannot fetch b from <nil>")
}

func TestParametersEncodeError(t *testing.T) {
	program := compileTemplate(t, "true", model.Parameter{Name: "nan", Expression: "event.x / 0.0"})

	got, err := program.Parameters(envFor(t, `{"x": 0.0}`, "admin", nil))

	assert.Nil(t, got)
	var evalErr *EvalError
	require.ErrorAs(t, err, &evalErr)
	assert.Equal(t, "spec.arguments.parameters[0].valueFrom.expression", evalErr.Field)
	assert.Contains(t, err.Error(), "not a finite number")
}
