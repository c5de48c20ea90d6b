package matcher

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
)

func TestExpressionHelpers(t *testing.T) {
	payload := map[string]any{
		"title": "<fix & ship>",
		"pr":    map[string]any{"number": int64(9007199254740993), "labels": []any{"bug", "ui"}},
	}
	cases := []struct {
		name       string
		expression string
		want       string
	}{
		{name: "sprig toString", expression: `sprig.toString(event.pr.number)`, want: "9007199254740993"},
		{name: "sprig upper", expression: `sprig.upper(event.title)`, want: "<FIX & SHIP>"},
		{name: "sprig trunc", expression: `sprig.trunc(3, "abcdef")`, want: "abc"},
		{name: "toJson keeps HTML characters", expression: `toJson(event.title)`, want: `"<fix & ship>"`},
		{name: "toJson object", expression: `toJson(event.pr)`, want: `{"labels":["bug","ui"],"number":9007199254740993}`},
		{name: "jsonpath singular", expression: `jsonpath(toJson(event), "$.pr.number")`, want: "9007199254740993"},
		{name: "jsonpath list", expression: `jsonpath(toJson(event), "$.pr.labels[*]")`, want: `["bug","ui"]`},
		{name: "jsonpath missing", expression: `jsonpath(toJson(event), "$.nope")`, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			program, err := Compile(model.Template{Expression: "true", Parameters: []model.Parameter{{Name: "p", Expression: tc.expression}}})
			require.NoError(t, err)

			values, err := program.Parameters(NewEnv(model.Event{Payload: payload}))

			require.NoError(t, err)
			assert.Equal(t, []model.ParameterValue{{Name: "p", Value: tc.want}}, values)
		})
	}
}

func TestExpressionHelperErrors(t *testing.T) {
	cases := []struct {
		name        string
		expression  string
		wantCompile bool
		wantError   string
	}{
		{name: "sprig env absent", expression: `sprig.env("HOME")`, wantError: "sprig.env is not available"},
		{name: "sprig expandenv absent", expression: `sprig.expandenv("$HOME")`, wantError: "sprig.expandenv is not available"},
		{name: "jsonpath bad query", expression: `jsonpath("{}", "$[")`, wantError: `invalid query "$["`},
		{name: "jsonpath bad document", expression: `jsonpath("{", "$")`, wantError: "not a JSON document"},
		{name: "jsonpath number argument", expression: `jsonpath(1, "$")`, wantCompile: true, wantError: "cannot use int"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			program, err := Compile(model.Template{Expression: "true", Parameters: []model.Parameter{{Name: "p", Expression: tc.expression}}})
			if tc.wantCompile {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantError)
				return
			}
			require.NoError(t, err)

			_, err = program.Parameters(NewEnv(model.Event{}))

			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestSprigInSelector(t *testing.T) {
	program, err := Compile(model.Template{Expression: `sprig.hasPrefix("refs/heads/", event.ref)`})
	require.NoError(t, err)

	matched, err := program.Match(NewEnv(model.Event{Payload: map[string]any{"ref": "refs/heads/main"}}))

	require.NoError(t, err)
	assert.True(t, matched)
}
