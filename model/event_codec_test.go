package model_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/model"
)

// roundTrip encodes ev and decodes the result.
func roundTrip(t testing.TB, ev model.Event) model.Event {
	t.Helper()
	data, err := ev.MarshalBinary()
	require.NoError(t, err)
	var decoded model.Event
	require.NoError(t, decoded.UnmarshalBinary(data), "decode %s", data)
	return decoded
}

func TestEventCodecRoundTrip(t *testing.T) {
	ev := model.Event{
		ID:            "0b8c7c0e-6a53-4e0e-9d43-7c1c2b1b2a11",
		Namespace:     "argo",
		Discriminator: "github",
		Payload: map[string]any{
			"message": "hello events",
			"id":      int64(9007199254740993),
			"ratio":   0.25,
			"ok":      true,
			"none":    nil,
			"list":    []any{int64(1), "two", 3.5, false, nil, []any{}, map[string]any{}},
		},
		Headers: map[string][]string{"X-Github-Event": {"push"}, "X-Argo-E2e": {"true", "again"}},
		Caller: model.Identity{
			Subject:           "system:serviceaccount:argo:github",
			UID:               "7f1c",
			Groups:            []string{"system:serviceaccounts", "system:serviceaccounts:argo"},
			Email:             "ci@example.com",
			PreferredUsername: "ci",
			Namespaces:        []string{"argo"},
			AllNamespaces:     true,
		},
		ReceivedAt: time.Date(2026, 7, 1, 12, 30, 45, 123456789, time.UTC),
	}

	got := roundTrip(t, ev)

	assert.True(t, ev.ReceivedAt.Equal(got.ReceivedAt), "ReceivedAt %v, want %v", got.ReceivedAt, ev.ReceivedAt)
	got.ReceivedAt = ev.ReceivedAt
	assert.Equal(t, ev, got)
}

func TestEventCodecKeepsNumberTypes(t *testing.T) {
	cases := []struct {
		name    string
		payload any
	}{
		{name: "max int64", payload: int64(math.MaxInt64)},
		{name: "min int64", payload: int64(math.MinInt64)},
		{name: "int64 beyond float64 precision", payload: int64(9007199254740993)},
		{name: "zero int64", payload: int64(0)},
		{name: "integral float64", payload: 2.0},
		{name: "large integral float64", payload: 1e18},
		{name: "float64 beyond int64", payload: 1e21},
		{name: "negative zero float64", payload: math.Copysign(0, -1)},
		{name: "tiny float64", payload: 5e-324},
		{name: "max float64", payload: math.MaxFloat64},
		{name: "fraction", payload: 0.1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, model.Event{ID: "e", Payload: tc.payload})

			assert.IsType(t, tc.payload, got.Payload)
			assert.Equal(t, tc.payload, got.Payload)
			if f, ok := tc.payload.(float64); ok {
				assert.Equal(t, math.Float64bits(f), math.Float64bits(got.Payload.(float64)), "bits of %v", f)
			}
		})
	}
}

func TestEventCodecKeepsNilApartFromEmpty(t *testing.T) {
	ev := model.Event{
		ID:      "e",
		Payload: []any{},
		Headers: map[string][]string{},
		Caller:  model.Identity{Groups: []string{}, Namespaces: nil},
	}

	got := roundTrip(t, ev)

	assert.Equal(t, []any{}, got.Payload)
	assert.NotNil(t, got.Headers)
	assert.NotNil(t, got.Caller.Groups)
	assert.Nil(t, got.Caller.Namespaces)
	assert.Nil(t, roundTrip(t, model.Event{ID: "e"}).Headers)
}

func TestEventCodecRejectsUnsupportedPayload(t *testing.T) {
	cases := []struct {
		name      string
		payload   any
		wantError string
	}{
		{name: "int", payload: 1, wantError: "unsupported payload type int"},
		{name: "nested float32", payload: map[string]any{"a": []any{float32(1)}}, wantError: "unsupported payload type float32"},
		{name: "NaN", payload: math.NaN(), wantError: "unsupported payload number NaN"},
		{name: "infinity", payload: math.Inf(1), wantError: "unsupported payload number +Inf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.Event{ID: "ev-1", Payload: tc.payload}.MarshalBinary()

			require.Error(t, err)
			assert.Contains(t, err.Error(), "encode event ev-1")
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestEventCodecRejectsInvalidData(t *testing.T) {
	cases := []struct {
		name      string
		data      string
		wantError string
	}{
		{name: "not JSON", data: "\x00\x01", wantError: "decode event"},
		{name: "unknown format", data: `{"format": 2, "id": "ev-1", "payload": null}`, wantError: "decode event ev-1: unsupported format 2"},
		{name: "missing format", data: `{"id": "ev-1", "payload": null}`, wantError: "unsupported format 0"},
		{name: "missing payload", data: `{"format": 1, "id": "ev-1"}`, wantError: "missing payload"},
		{name: "integer out of range", data: `{"format": 1, "id": "ev-1", "payload": [99999999999999999999]}`, wantError: `invalid payload number "99999999999999999999"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev model.Event
			err := ev.UnmarshalBinary([]byte(tc.data))

			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

// payloadGenerator draws JSON values of the types a decoded body contains,
// nested up to depth levels.
func payloadGenerator(depth int) *rapid.Generator[any] {
	scalars := []*rapid.Generator[any]{
		rapid.Just[any](nil),
		rapid.Map(rapid.Bool(), func(b bool) any { return b }),
		rapid.Map(rapid.Int64(), func(i int64) any { return i }),
		rapid.Map(rapid.Float64(), func(f float64) any { return f }),
		rapid.Map(rapid.String(), func(s string) any { return s }),
	}
	if depth == 0 {
		return rapid.OneOf(scalars...)
	}
	element := payloadGenerator(depth - 1)
	return rapid.OneOf(append(scalars,
		rapid.Map(rapid.SliceOfN(element, 0, 4), func(s []any) any { return s }),
		rapid.Map(rapid.MapOfN(rapid.String(), element, 0, 4), func(m map[string]any) any { return m }),
	)...)
}

// TestEventCodecPayloadProperty checks that any payload of the documented
// types decodes to an equal value of the same types.
func TestEventCodecPayloadProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		payload := payloadGenerator(3).Draw(rt, "payload")

		data, err := model.Event{ID: "e", Payload: payload}.MarshalBinary()
		require.NoError(rt, err)
		rt.Logf("encoded: %s", data)
		var got model.Event
		require.NoError(rt, got.UnmarshalBinary(data))

		require.Equal(rt, payload, got.Payload)
	})
}
