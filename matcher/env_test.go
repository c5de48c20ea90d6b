package matcher

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/model"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		body string
		want any
	}{
		{name: "empty body", body: "", want: nil},
		{name: "whitespace only", body: " \t\r\n ", want: nil},
		{name: "null", body: "null", want: nil},
		{name: "true", body: "true", want: true},
		{name: "false", body: "false", want: false},
		{name: "string", body: `"h\u00e9llo \"x\"\n"`, want: "héllo \"x\"\n"},
		{name: "integer", body: "42", want: int64(42)},
		{name: "negative integer", body: "-7", want: int64(-7)},
		{name: "negative zero", body: "-0", want: int64(0)},
		{name: "integer above 2^53", body: "9007199254740993", want: int64(9007199254740993)},
		{name: "int64 max", body: "9223372036854775807", want: int64(math.MaxInt64)},
		{name: "int64 min", body: "-9223372036854775808", want: int64(math.MinInt64)},
		{name: "integer above int64", body: "9223372036854775808", want: float64(9223372036854775808)},
		{name: "integer below int64", body: "-9223372036854775809", want: float64(-9223372036854775809)},
		{name: "huge integer", body: "100000000000000000000000", want: 1e23},
		{name: "fraction", body: "1.5", want: 1.5},
		{name: "integral fraction", body: "1.0", want: float64(1)},
		{name: "exponent", body: "1e2", want: float64(100)},
		{name: "underflow", body: "1e-400", want: float64(0)},
		{name: "surrounding whitespace", body: "\n  {}  \n", want: map[string]any{}},
		{name: "empty array", body: "[]", want: []any{}},
		{name: "array", body: `[1, "a", null, 2.5, false]`, want: []any{int64(1), "a", nil, 2.5, false}},
		{
			name: "nested numbers",
			body: `{"a": {"b": [1, {"c": 18446744073709551616, "d": 0.25}]}, "e": 9007199254740993}`,
			want: map[string]any{
				"a": map[string]any{
					"b": []any{int64(1), map[string]any{"c": float64(18446744073709551616), "d": 0.25}},
				},
				"e": int64(9007199254740993),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(tt.body))

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantMessage string
	}{
		{name: "trailing data", body: `{"a": 1} x`, wantMessage: "unexpected data after the first value"},
		{name: "two objects", body: `{} {}`, wantMessage: "unexpected data after the first value"},
		{name: "two numbers", body: `1 2`, wantMessage: "unexpected data after the first value"},
		{name: "stray bracket", body: `[1]]`, wantMessage: "unexpected data after the first value"},
		{name: "number out of range", body: `1e400`, wantMessage: `number "1e400" is out of range`},
		{name: "nested number out of range", body: `{"a": [-1e400]}`, wantMessage: `number "-1e400" is out of range`},
		{name: "truncated object", body: `{"a": `, wantMessage: "invalid JSON"},
		{name: "missing value", body: `{"a": }`, wantMessage: "invalid JSON"},
		{name: "single quotes", body: `'a'`, wantMessage: "invalid JSON"},
		{name: "NaN", body: `NaN`, wantMessage: "invalid JSON"},
		{name: "form encoding", body: `message=hello`, wantMessage: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(tt.body))

			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid JSON")
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.Nil(t, got)
		})
	}
}

// JSON whitespace is only space, tab, line feed and carriage return, and
// encoding/json rejects any other space character. A body of such characters
// is therefore neither empty nor JSON.
func TestDecodeJSONOtherSpaceCharacters(t *testing.T) {

	for _, body := range []string{"\v", "\f", "\u0085", "\u00a0", " \u00a0\n"} {
		got, err := DecodeJSON([]byte(body))

		assert.Error(t, err, "body %q", body)
		assert.Nil(t, got, "body %q", body)
	}
}

// hiddenHeaders are the lowercased names an expression must never see.
var hiddenHeaders = []string{
	"authorization", "cookie",
	"x-gitlab-token", "x-hook-uuid", "x-hub-signature", "x-hub-signature-256",
}

// headersGenerator draws request headers: random names with and without an
// x- prefix, several spellings of each name that differ only in case, the
// credential and signature headers, and one or more values per header.
func headersGenerator() *rapid.Generator[map[string][]string] {
	return rapid.Custom(func(t *rapid.T) map[string][]string {
		var names []string
		for range rapid.IntRange(0, 5).Draw(t, "random names") {
			prefix := rapid.SampledFrom([]string{"", "x-", "X-", "x", "X_", "xx-", "Content-"}).Draw(t, "prefix")
			names = append(names, prefix+rapid.StringMatching(`[A-Za-z0-9-]{0,8}`).Draw(t, "name"))
		}
		for _, name := range append(slices.Clone(hiddenHeaders), "x-argo-e2e", "x-github-event") {
			if rapid.Bool().Draw(t, "include "+name) {
				names = append(names, name)
			}
		}

		headers := make(map[string][]string)
		for _, name := range names {
			for range rapid.IntRange(1, 3).Draw(t, "spellings") {
				values := rapid.SliceOfN(stringGenerator(), 1, 3).Draw(t, "values")
				headers[randomCase(t, name)] = values
			}
		}
		return headers
	})
}

// wantFilteredHeaders is the model of FilterHeaders: names that differ only in
// case form one key, whose value lists the values of each spelling in the
// sorted order of the spellings.
func wantFilteredHeaders(headers map[string][]string) map[string]any {
	spellings := make(map[string][]string) // lowercased name to original names
	for name := range headers {
		key := strings.ToLower(name)
		spellings[key] = append(spellings[key], name)
	}

	want := make(map[string]any)
	for key, names := range spellings {
		if !strings.HasPrefix(key, "x-") || slices.Contains(hiddenHeaders, key) {
			continue
		}
		slices.Sort(names)
		var values []string
		for _, name := range names {
			values = append(values, headers[name]...)
		}
		want[key] = values
	}
	return want
}

func cloneHeaders(headers map[string][]string) map[string][]string {
	clone := make(map[string][]string, len(headers))
	for name, values := range headers {
		clone[name] = slices.Clone(values)
	}
	return clone
}

func TestFilterHeadersProperty(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		headers := headersGenerator().Draw(t, "headers")
		original := cloneHeaders(headers)

		got := FilterHeaders(headers)

		assert.Equal(t, wantFilteredHeaders(original), got)
		for key := range got {
			assert.Equal(t, strings.ToLower(key), key, "key is lowercase")
			assert.True(t, strings.HasPrefix(key, "x-"), "key %q starts with x-", key)
			assert.NotContains(t, hiddenHeaders, key, "hidden header exposed")
		}
		assert.Equal(t, original, headers, "input headers unchanged")
	})
}

func TestFilterHeadersMergesSpellings(t *testing.T) {
	headers := map[string][]string{
		"x-custom":            {"c"},
		"X-Custom":            {"a", "b"},
		"X-CUSTOM":            {"0"},
		"X-Argo-E2e":          {"true"},
		"X-Hub-Signature-256": {"sha256=secret"},
		"Authorization":       {"Bearer secret"},
		"Content-Type":        {"application/json"},
	}

	got := FilterHeaders(headers)

	want := map[string]any{
		"x-custom":   []string{"0", "a", "b", "c"}, // in the order X-CUSTOM, X-Custom, x-custom
		"x-argo-e2e": []string{"true"},
	}
	assert.Equal(t, want, got)
}

// serviceAccountPart matches a Kubernetes namespace or service account name.
const serviceAccountPart = `[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?`

func TestNewEnvProperty(t *testing.T) {
	checkProperty(t, func(t *rapid.T) {
		headers := headersGenerator().Draw(t, "headers")
		var groups []string
		if rapid.Bool().Draw(t, "has groups") {
			groups = rapid.SliceOfN(rapid.StringMatching(`[a-z:]{1,12}`), 1, 3).Draw(t, "groups")
		}
		wantClaims := map[string]any{}
		var subject string
		if rapid.Bool().Draw(t, "service account") {
			namespace := rapid.StringMatching(serviceAccountPart).Draw(t, "service account namespace")
			name := rapid.StringMatching(serviceAccountPart).Draw(t, "service account name")
			subject = "system:serviceaccount:" + namespace + ":" + name
			wantClaims["service_account_namespace"] = namespace
			wantClaims["service_account_name"] = name
		} else {
			subject = rapid.StringMatching(`[a-z][a-z0-9.@-]{0,10}`).Draw(t, "user name")
		}
		wantClaims["sub"] = subject
		wantClaims["groups"] = groups
		if groups == nil {
			wantClaims["groups"] = []string{}
		}
		payload := jsonObject(t, 1)
		event := model.Event{
			ID:            "ev-1",
			Namespace:     rapid.SampledFrom([]string{"", "argo", "team-a"}).Draw(t, "namespace"),
			Discriminator: rapid.SampledFrom([]string{"", "github", "a b"}).Draw(t, "discriminator"),
			Payload:       payload,
			Headers:       headers,
			Caller:        model.Identity{Subject: subject, Groups: groups},
		}
		wantMetadata := wantFilteredHeaders(cloneHeaders(headers))
		wantMetadata["claimSet"] = wantClaims

		env := NewEnv(event)

		require.NotNil(t, env)
		assert.Equal(t, wantMetadata, env.Metadata)
		assert.Equal(t, payload, env.Event, "event")
		assert.Equal(t, payload, env.Payload, "payload")
		assert.Equal(t, event.Namespace, env.Namespace)
		assert.Equal(t, event.Discriminator, env.Discriminator)
	})
}

func TestNewEnvClaimSet(t *testing.T) {
	tests := []struct {
		name       string
		caller     model.Identity
		wantClaims map[string]any
	}{
		{
			name:       "user without groups",
			caller:     model.Identity{Subject: "admin"},
			wantClaims: map[string]any{"sub": "admin", "groups": []string{}},
		},
		{
			name:       "user with groups",
			caller:     model.Identity{Subject: "alice", Groups: []string{"dev", "ops"}},
			wantClaims: map[string]any{"sub": "alice", "groups": []string{"dev", "ops"}},
		},
		{
			name:   "service account",
			caller: model.Identity{Subject: "system:serviceaccount:argo:github", Groups: []string{"system:serviceaccounts"}},
			wantClaims: map[string]any{
				"sub":                       "system:serviceaccount:argo:github",
				"groups":                    []string{"system:serviceaccounts"},
				"service_account_namespace": "argo",
				"service_account_name":      "github",
			},
		},
		{
			name:       "service account without name",
			caller:     model.Identity{Subject: "system:serviceaccount:argo"},
			wantClaims: map[string]any{"sub": "system:serviceaccount:argo", "groups": []string{}},
		},
		{
			name:       "service account with empty name",
			caller:     model.Identity{Subject: "system:serviceaccount:argo:"},
			wantClaims: map[string]any{"sub": "system:serviceaccount:argo:", "groups": []string{}},
		},
		{
			name:       "service account with empty namespace",
			caller:     model.Identity{Subject: "system:serviceaccount::github"},
			wantClaims: map[string]any{"sub": "system:serviceaccount::github", "groups": []string{}},
		},
		{
			name:       "service account group name",
			caller:     model.Identity{Subject: "system:serviceaccounts:argo"},
			wantClaims: map[string]any{"sub": "system:serviceaccounts:argo", "groups": []string{}},
		},
		{
			name:       "empty subject",
			caller:     model.Identity{},
			wantClaims: map[string]any{"sub": "", "groups": []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(model.Event{Caller: tt.caller})

			assert.Equal(t, tt.wantClaims, env.Metadata["claimSet"])
		})
	}
}
