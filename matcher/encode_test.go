package matcher

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestEncodeParameter(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{name: "nil", value: nil, want: ""},
		{name: "empty string", value: "", want: ""},
		{name: "string with quotes", value: `say "hi"`, want: `say "hi"`},
		{name: "string with newline", value: "line 1\nline 2", want: "line 1\nline 2"},
		{name: "string with percent", value: "100% %s %v", want: "100% %s %v"},
		{name: "string with backslash and html", value: `a\b <a&b>`, want: `a\b <a&b>`},
		{name: "string with unicode", value: "héllo 🎉 \u2028", want: "héllo 🎉 \u2028"},
		{name: "true", value: true, want: "true"},
		{name: "false", value: false, want: "false"},
		{name: "int", value: 3, want: "3"},
		{name: "negative int", value: -42, want: "-42"},
		{name: "int64 above 2^53", value: int64(9007199254740993), want: "9007199254740993"},
		{name: "int64 max", value: int64(math.MaxInt64), want: "9223372036854775807"},
		{name: "int64 min", value: int64(math.MinInt64), want: "-9223372036854775808"},
		{name: "int32", value: int32(-7), want: "-7"},
		{name: "uint64 max", value: uint64(math.MaxUint64), want: "18446744073709551615"},
		{name: "float 0.1", value: 0.1, want: "0.1"},
		{name: "float 1.5", value: 1.5, want: "1.5"},
		{name: "float negative", value: -2.25, want: "-2.25"},
		{name: "float zero", value: 0.0, want: "0"},
		{name: "float integral", value: 3.0, want: "3"},
		{name: "float 1e20 without exponent", value: 1e20, want: "100000000000000000000"},
		{name: "float 1e21 with exponent", value: 1e21, want: "1e+21"},
		{name: "float 1e-6 without exponent", value: 1e-6, want: "0.000001"},
		{name: "float 1e-7 with exponent", value: 1e-7, want: "1e-7"},
		{name: "float negative zero", value: math.Copysign(0, -1), want: "0"},
		{name: "float large negative exponent", value: -2.5e-10, want: "-2.5e-10"},
		{name: "float max", value: math.MaxFloat64, want: "1.7976931348623157e+308"},
		{name: "duration", value: 90 * time.Second, want: "1m30s"},
		{name: "time", value: time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC), want: "2024-05-06T07:08:09.0000005Z"},
		{name: "empty map", value: map[string]any{}, want: "{}"},
		{name: "empty slice", value: []any{}, want: "[]"},
		{
			name:  "map compact with sorted keys",
			value: map[string]any{"b": int64(2), "a": []any{"x", true, nil}},
			want:  `{"a":["x",true,null],"b":2}`,
		},
		{name: "map without html escaping", value: map[string]any{"tag": "<a&b>"}, want: `{"tag":"<a&b>"}`},
		{name: "slice with escapes", value: []any{"quote \" newline \n"}, want: `["quote \" newline \n"]`},
		{name: "slice of header values", value: []string{"push"}, want: `["push"]`},
		{name: "map with big int", value: map[string]any{"id": int64(9007199254740993)}, want: `{"id":9007199254740993}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeParameter(tt.value)

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEncodeParameterErrors(t *testing.T) {
	tests := []struct {
		name        string
		value       any
		wantMessage string
	}{
		{name: "NaN", value: math.NaN(), wantMessage: "NaN is not a finite number"},
		{name: "positive infinity", value: math.Inf(1), wantMessage: "+Inf is not a finite number"},
		{name: "negative infinity", value: math.Inf(-1), wantMessage: "-Inf is not a finite number"},
		{name: "NaN inside map", value: map[string]any{"x": math.NaN()}, wantMessage: "map[string]interface {} cannot be written as JSON"},
		{name: "channel", value: make(chan int), wantMessage: "chan int cannot be written as JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeParameter(tt.value)

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.Empty(t, got)
		})
	}
}

func TestEncodeParameterInt64Exact(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		value := int64Generator().Draw(t, "value")

		got, err := EncodeParameter(value)

		require.NoError(t, err)
		assert.Equal(t, strconv.FormatInt(value, 10), got)
	})
}

func TestEncodeParameterStringVerbatim(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		value := stringGenerator().Draw(t, "value")

		got, err := EncodeParameter(value)

		require.NoError(t, err)
		assert.Equal(t, value, got)
	})
}

// Every finite float reads back to the same value, and is written without an
// exponent exactly in the range where JavaScript writes none.
func TestEncodeParameterFloatRoundTrip(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		value := float64Generator().Draw(t, "value")

		got, err := EncodeParameter(value)
		require.NoError(t, err)
		t.Logf("encoded: %s", got)

		parsed, err := strconv.ParseFloat(got, 64)
		require.NoError(t, err)
		assert.Equal(t, value, parsed, "value read back")

		magnitude := math.Abs(value)
		wantPlain := magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e21)
		assert.Equal(t, wantPlain, !strings.ContainsAny(got, "eE"), "written without exponent")
	})
}
