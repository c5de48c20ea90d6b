package matcher

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/model"
)

// pathStep is one step into a decoded JSON value: an object key or, when
// isIndex is set, an array index.
type pathStep struct {
	key     string
	index   int
	isIndex bool
}

// accessExpression returns an expression that reads path from root, with
// bracket syntax so that any key works. Go's quoting is used for keys
// because expr string literals accept the same escapes.
func accessExpression(root string, path []pathStep) string {
	var b strings.Builder
	b.WriteString(root)
	for _, step := range path {
		b.WriteByte('[')
		if step.isIndex {
			b.WriteString(strconv.Itoa(step.index))
		} else {
			b.WriteString(strconv.Quote(step.key))
		}
		b.WriteByte(']')
	}
	return b.String()
}

// drawPath draws a path to some value inside root. It also returns the
// deepest object on that path and the path to it, where the test looks up a
// key that is absent.
func drawPath(t *rapid.T, root map[string]any) (path, objectPath []pathStep, object map[string]any) {
	const maxSteps = 8 // deeper than any generated value

	object = root
	var current any = root
	for range maxSteps {
		switch value := current.(type) {
		case map[string]any:
			if len(value) == 0 || !rapid.Bool().Draw(t, "descend") {
				return path, objectPath, object
			}
			keys := slices.Sorted(maps.Keys(value))
			key := rapid.SampledFrom(keys).Draw(t, "key")
			path = append(path, pathStep{key: key})
			current = value[key]
		case []any:
			if len(value) == 0 || !rapid.Bool().Draw(t, "descend") {
				return path, objectPath, object
			}
			index := rapid.IntRange(0, len(value)-1).Draw(t, "index")
			path = append(path, pathStep{index: index, isIndex: true})
			current = value[index]
		default:
			return path, objectPath, object
		}
		if next, ok := current.(map[string]any); ok {
			object = next
			objectPath = slices.Clone(path)
		}
	}
	return path, objectPath, object
}

// lookup follows path in a value built by jsonValue.
func lookup(v any, path []pathStep) any {
	for _, step := range path {
		if step.isIndex {
			v = v.([]any)[step.index]
		} else {
			v = v.(map[string]any)[step.key]
		}
	}
	return v
}

// absentKey returns a key that object does not have.
func absentKey(t *rapid.T, object map[string]any) string {
	key := stringGenerator().Draw(t, "absent key")
	for range len(object) + 1 {
		if _, ok := object[key]; !ok {
			return key
		}
		key += "~"
	}
	t.Fatalf("no absent key found in an object of %d keys", len(object))
	return ""
}

// wantDecoded returns what DecodeJSON must return for the JSON that
// encoding/json writes for v. encoding/json writes a float of magnitude below
// 1e21 as its shortest decimal digits without an exponent, so an integral one
// reads back as the int64 that this text names, when it fits. For example,
// -2^63 is written as -9223372036854776000, which does not fit.
func wantDecoded(v any) any {
	switch value := v.(type) {
	case float64:
		if value != math.Trunc(value) || math.Abs(value) >= 1e21 {
			return value
		}
		text := strconv.FormatFloat(value, 'f', -1, 64)
		if integer, err := strconv.ParseInt(text, 10, 64); err == nil {
			return integer
		}
		return value
	case []any:
		decoded := make([]any, len(value))
		for i, element := range value {
			decoded[i] = wantDecoded(element)
		}
		return decoded
	case map[string]any:
		decoded := make(map[string]any, len(value))
		for key, element := range value {
			decoded[key] = wantDecoded(element)
		}
		return decoded
	}
	return v
}

// evaluate compiles source the way Compile does and runs it against env,
// returning the raw result that Match and Parameters only see converted.
func evaluate(source string, env *Env) (any, error) {
	program, err := expr.Compile(source, compileOptions...)
	if err != nil {
		return nil, err
	}
	return expr.Run(program, env)
}

func TestExpressionReadsPayloadPath(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		payload := jsonObject(t, 3)
		body, err := json.Marshal(payload)
		require.NoError(t, err)
		t.Logf("body: %s", body)

		decoded, err := DecodeJSON(body)
		require.NoError(t, err)
		want := wantDecoded(payload)
		require.Equal(t, want, decoded, "decoded body")

		path, objectPath, object := drawPath(t, want.(map[string]any))
		wantValue := lookup(want, path)
		env := NewEnv(model.Event{Payload: decoded})

		for _, root := range []string{"event", "payload"} {
			source := accessExpression(root, path)
			t.Logf("expression: %s", source)

			got, err := evaluate(source, env)

			require.NoError(t, err)
			assert.Equal(t, wantValue, got, "value of %s", source)
		}

		absentPath := append(slices.Clone(objectPath), pathStep{key: absentKey(t, object)})
		absentSource := accessExpression("event", absentPath)
		t.Logf("absent key expression: %s", absentSource)
		got, err := evaluate(absentSource, env)
		require.NoError(t, err)
		assert.Nil(t, got, "value of %s", absentSource)
	})
}

// A parameter whose expression reads a payload value gets that value in the
// documented encoding.
func TestParameterEncodesPayloadPath(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		payload := jsonObject(t, 3)
		body, err := json.Marshal(payload)
		require.NoError(t, err)
		t.Logf("body: %s", body)
		decoded, err := DecodeJSON(body)
		require.NoError(t, err)

		want := wantDecoded(payload)
		path, _, _ := drawPath(t, want.(map[string]any))
		wantValue := lookup(want, path)
		source := accessExpression("event", path)
		t.Logf("expression: %s", source)
		program, err := Compile(model.Template{
			Expression: "true",
			Parameters: []model.Parameter{{Name: "value", Expression: source}},
		})
		require.NoError(t, err)

		values, err := program.Parameters(NewEnv(model.Event{Payload: decoded}))

		require.NoError(t, err)
		require.Len(t, values, 1)
		got := values[0].Value
		t.Logf("parameter value: %s", got)
		switch want := wantValue.(type) {
		case nil:
			assert.Empty(t, got)
		case bool:
			assert.Equal(t, strconv.FormatBool(want), got)
		case int64:
			assert.Equal(t, strconv.FormatInt(want, 10), got)
		case float64:
			parsed, err := strconv.ParseFloat(got, 64)
			require.NoError(t, err)
			assert.Equal(t, want, parsed)
		case string:
			assert.Equal(t, want, got)
		default:
			require.True(t, json.Valid([]byte(got)), "valid JSON")
			roundTrip, err := DecodeJSON([]byte(got))
			require.NoError(t, err)
			assert.Equal(t, want, roundTrip)
		}
	})
}
