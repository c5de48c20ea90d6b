package matcher

import (
	"math"
	"strings"
	"testing"
	"unicode"

	"pgregory.net/rapid"
)

// Generators shared by the property tests. Each draws hard cases often:
// integers beyond 2^53, floats on the exponent boundaries, strings that need
// escaping in JSON and in expression string literals.

// checkProperty runs prop with rapid.Check and ends each failing example with
// FailNow. rapid shrinks a failure only while its message stays the same, and
// the message of a failed assert includes rapid's own stack frames, which
// differ between the first run and the reruns. FailNow's message is fixed, so
// properties can use independent asserts and still shrink.
func checkProperty(t *testing.T, prop func(t *rapid.T)) {
	t.Helper()
	rapid.Check(t, func(t *rapid.T) {
		prop(t)
		if t.Failed() {
			t.FailNow()
		}
	})
}

const maxSafeInteger = 1 << 53 // above this, float64 cannot hold every integer

func int64Generator() *rapid.Generator[int64] {
	return rapid.OneOf(
		rapid.Int64(),
		rapid.Int64Range(maxSafeInteger, math.MaxInt64),
		rapid.Int64Range(math.MinInt64, -maxSafeInteger),
		rapid.SampledFrom([]int64{
			0, -1, maxSafeInteger + 1, -maxSafeInteger - 1, math.MaxInt64, math.MinInt64,
		}),
	)
}

// float64Generator draws finite floats only: JSON has no NaN or infinity.
func float64Generator() *rapid.Generator[float64] {
	return rapid.OneOf(
		rapid.Float64(),
		rapid.Float64Range(-1, 1),
		rapid.SampledFrom([]float64{
			0.1, 1.5, -2.5, 3.0, math.Copysign(0, -1),
			1e-7, 1e-6, 1e20, 1e21, -1e21,
			math.MaxInt64, math.MinInt64, // 2^63 and -2^63
			math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64,
		}),
	)
}

// stringGenerator draws valid UTF-8 strings, often with quotes, backslashes,
// control characters, HTML characters, line separators or emoji.
func stringGenerator() *rapid.Generator[string] {
	tricky := rapid.RuneFrom([]rune{
		'"', '\'', '`', '\\', '\n', '\r', '\t', 0, 0x7f, '<', '>', '&', '%',
		'\u2028', '\u2029', 'é', '🎉', '\ufeff', '\ufffd',
	})
	return rapid.OneOf(
		rapid.String(),
		rapid.StringOf(rapid.OneOf(tricky, rapid.RuneFrom(nil, unicode.Latin, unicode.Han))),
		rapid.SampledFrom([]string{"", "a.b", "$", "0", "a\"b", "line\nbreak", "nul\x00"}),
	)
}

// jsonValue draws a value that encoding/json can encode: nil, bool, int64,
// float64, string, []any or map[string]any, nested at most depth levels.
// Slices and maps are never nil, because a nil one encodes as null.
func jsonValue(t *rapid.T, depth int) any {
	const maxEntries = 4

	kinds := 6 // nil, bool, int64, float64, string
	if depth > 0 {
		kinds = 8 // and []any, map[string]any
	}
	switch rapid.IntRange(0, kinds-1).Draw(t, "kind") {
	case 0:
		return nil
	case 1:
		return rapid.Bool().Draw(t, "bool")
	case 2:
		return int64Generator().Draw(t, "int64")
	case 3:
		return float64Generator().Draw(t, "float64")
	case 4, 5:
		return stringGenerator().Draw(t, "string")
	case 6:
		n := rapid.IntRange(0, maxEntries).Draw(t, "length")
		array := make([]any, n)
		for i := range array {
			array[i] = jsonValue(t, depth-1)
		}
		return array
	default:
		return jsonObject(t, depth-1)
	}
}

func jsonObject(t *rapid.T, depth int) map[string]any {
	const maxEntries = 4

	n := rapid.IntRange(0, maxEntries).Draw(t, "size")
	object := make(map[string]any, n)
	for range n {
		object[stringGenerator().Draw(t, "key")] = jsonValue(t, depth)
	}
	return object
}

// randomCase returns s with the case of each ASCII letter drawn at random.
func randomCase(t *rapid.T, s string) string {
	var b strings.Builder
	for _, r := range s {
		if rapid.Bool().Draw(t, "upper") {
			b.WriteRune(unicode.ToUpper(r))
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
