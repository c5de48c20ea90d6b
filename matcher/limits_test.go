package matcher

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
)

func TestDecodeJSONDepthLimit(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		wantError string
	}{
		{name: "at the limit", body: strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)},
		{name: "over the limit", body: strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), wantError: "nest deeper than 256 levels"},
		{name: "deep objects", body: strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300), wantError: "nest deeper than 256 levels"},
		{name: "brackets in strings", body: `{"a":"` + strings.Repeat("[{", 1000) + `\"]"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeJSON([]byte(tc.body))

			if tc.wantError == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestCompileRejectsHugeExpression(t *testing.T) {
	huge := strings.Repeat("event.a == 1 || ", maxExpressionLength/16+1) + "true"

	_, err := Compile(model.Template{Expression: huge})

	var compileErr *CompileError
	require.ErrorAs(t, err, &compileErr)
	assert.Contains(t, compileErr.Error(), "more than the limit of 16384")
	assert.Less(t, len(compileErr.Expression), 100, "the error does not repeat the whole expression")
}

func TestCompileRejectsTooManyNodes(t *testing.T) {
	// Under the length limit, but with more syntax nodes than allowed.
	many := strings.Repeat("1+", 6000) + "1"

	_, err := Compile(model.Template{Expression: many})

	require.Error(t, err)
}
