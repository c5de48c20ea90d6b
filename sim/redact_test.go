package sim_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/sim"
)

func TestRedactHeaders(t *testing.T) {
	cases := []struct {
		name       string
		value      string
		wantRedact bool
	}{
		{name: "Authorization", value: "Bearer admin-token", wantRedact: true},
		{name: "Proxy-Authorization", value: "Basic dXNlcjpwYXNz", wantRedact: true},
		{name: "Cookie", value: "session=abc", wantRedact: true},
		{name: "Set-Cookie", value: "session=abc", wantRedact: true},
		{name: "X-Hub-Signature", value: "sha256=00ff", wantRedact: true},
		{name: "X-Hub-Signature-256", value: "sha256=00ff", wantRedact: true},
		{name: "X-Gitlab-Token", value: "gitlab-webhook-secret", wantRedact: true},
		{name: "X-Hook-Uuid", value: "0b1c6d1e-7f3a-4c2b-9e5d-3a2f1b0c9d8e", wantRedact: true},
		{name: "X-Api-Key", value: "k1", wantRedact: true},
		{name: "X-Auth-Token", value: "t1", wantRedact: true},
		{name: "Private-Token", value: "t2", wantRedact: true},
		{name: "X-Client-Secret", value: "s1", wantRedact: true},
		{name: "X-Password", value: "p1", wantRedact: true},
		{name: "X-Webhook-Signature", value: "s2", wantRedact: true},
		{name: "x-lowercase-token", value: "t3", wantRedact: true},
		{name: "Idempotency-Key", value: "order-42"},
		{name: "X-Github-Delivery", value: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{name: "X-Gitlab-Event-Uuid", value: "13792a34-cac6-4fda-95a8-c58e00a3954e"},
		{name: "X-Request-Uuid", value: "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
		{name: "X-Github-Event", value: "push"},
		{name: "Content-Type", value: "application/json"},
		{name: "User-Agent", value: "GitHub-Hookshot/7b5e0c2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := sim.Request{Headers: http.Header{tc.name: {tc.value, tc.value}}}

			sim.Redact(&req)

			want := tc.value
			if tc.wantRedact {
				want = sim.Redacted
			}
			assert.Equal(t, []string{want, want}, req.Headers[tc.name], "every value is redacted or kept, and the count stays")
		})
	}
}

func TestRedactKeepsEmptyValue(t *testing.T) {
	req := sim.Request{Headers: http.Header{"Authorization": {""}}}

	sim.Redact(&req)

	assert.Equal(t, []string{""}, req.Headers["Authorization"], "an empty credential is not a secret, and replay needs to see it was empty")
}

func TestRedactQuery(t *testing.T) {
	cases := []struct {
		name string
		path string
		want string
	}{
		{name: "no query", path: "/api/v1/events/argo", want: "/api/v1/events/argo"},
		{name: "plain parameters", path: "/api/v1/events/argo?dryRun=All&b=2", want: "/api/v1/events/argo?dryRun=All&b=2"},
		{
			name: "credentials",
			path: "/api/v1/events/argo?token=t1&dryRun=All&key=k1&access_token=a1&api_key=x1&secret=s1&password=p1&signature=g1&monkey=m",
			want: "/api/v1/events/argo?token=REDACTED&dryRun=All&key=REDACTED&access_token=REDACTED&api_key=REDACTED&secret=REDACTED&password=REDACTED&signature=REDACTED&monkey=m",
		},
		{name: "case and escaping", path: "/e?Private_Token=t1&%74oken=t2&x=%2F", want: "/e?Private_Token=REDACTED&%74oken=REDACTED&x=%2F"},
		{name: "no value", path: "/e?token&key=", want: "/e?token&key="},
		{name: "repeated", path: "/e?token=a&token=b", want: "/e?token=REDACTED&token=REDACTED"},
		{name: "invalid escape in name", path: "/e?token%zz=t1", want: "/e?token%zz=REDACTED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := sim.Request{Path: tc.path}

			sim.Redact(&req)

			assert.Equal(t, tc.want, req.Path)
		})
	}
}

// secretNames are the headers that are secret by name alone.
var secretNames = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Hub-Signature", "X-Hub-Signature-256", "X-Gitlab-Token", "X-Hook-UUID",
}

// secretWords make any header or query parameter whose name contains one
// of them secret.
var secretWords = []string{"token", "secret", "password", "signature", "api-key", "api_key", "apikey"}

// keptNames are never redacted.
var keptNames = []string{"Idempotency-Key", "X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Request-UUID"}

// randomCase draws a spelling of word with each letter in either case.
func randomCase(t *rapid.T, word, label string) string {
	upper := rapid.SliceOfN(rapid.Bool(), len(word), len(word)).Draw(t, label)
	var b strings.Builder
	for i, r := range word {
		if upper[i] {
			b.WriteString(strings.ToUpper(string(r)))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Secret values start with "Zq", which no other part of a line contains:
// plain names and values are lowercase, and no secret word has a z or q.
var (
	secretValue = rapid.StringMatching(`Zq[A-Za-z0-9._~+/=-]{6,30}`)
	plainValue  = rapid.StringMatching(`[a-z0-9 ,;=/.-]{0,20}`)
	// plainName cannot spell a secret word, because it lacks a, e, p, s
	// and t.
	plainName = rapid.StringMatching(`x-[bcdfghijklmnoqruvwxyz0-9-]{1,12}`)
)

func TestRedactPropertyNoSecretSurvives(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		headers := http.Header{}
		var secrets, plain []string

		// Headers secret by their exact name, in any case.
		for range rapid.IntRange(0, 3).Draw(t, "exact count") {
			name := randomCase(t, rapid.SampledFrom(secretNames).Draw(t, "exact name"), "exact case")
			for range rapid.IntRange(1, 2).Draw(t, "exact values") {
				value := secretValue.Draw(t, "exact value")
				headers[name] = append(headers[name], value)
				secrets = append(secrets, value)
			}
		}
		// Headers whose name contains a secret word.
		for range rapid.IntRange(0, 3).Draw(t, "word count") {
			word := randomCase(t, rapid.SampledFrom(secretWords).Draw(t, "word"), "word case")
			name := rapid.StringMatching(`[a-z0-9-]{0,6}`).Draw(t, "prefix") + word + rapid.StringMatching(`[a-z0-9-]{0,6}`).Draw(t, "suffix")
			value := secretValue.Draw(t, "word value")
			headers[name] = append(headers[name], value)
			secrets = append(secrets, value)
		}
		// Headers that stay, with lowercase values.
		for range rapid.IntRange(0, 3).Draw(t, "plain count") {
			name := plainName.Draw(t, "plain name")
			value := plainValue.Draw(t, "plain value")
			headers[name] = append(headers[name], value)
			plain = append(plain, value)
		}
		keptName := rapid.SampledFrom(keptNames).Draw(t, "kept name")
		keptValue := plainValue.Draw(t, "kept value")
		headers.Set(keptName, keptValue)

		// Query parameters.
		queryName := randomCase(t, rapid.SampledFrom(append([]string{"key", "access_token"}, secretWords...)).Draw(t, "query name"), "query case")
		queryValue := secretValue.Draw(t, "query value")
		path := "/api/v1/events/argo?" + url.QueryEscape(queryName) + "=" + url.QueryEscape(queryValue) + "&dryRun=All"
		secrets = append(secrets, queryValue, url.QueryEscape(queryValue))

		req := sim.Request{Method: http.MethodPost, Path: path, Headers: headers, Body: []byte(`{}`)}
		sim.Redact(&req)
		var line bytes.Buffer
		if err := sim.WriteStream(&line, []sim.Request{req}); err != nil {
			t.Fatal(err)
		}

		t.Logf("line: %s", line.String())
		for _, secret := range secrets {
			if strings.Contains(line.String(), secret) {
				t.Fatalf("secret %q survives in the line", secret)
			}
		}
		if !strings.HasSuffix(req.Path, "&dryRun=All") {
			t.Fatalf("plain query parameter dryRun lost from path %q", req.Path)
		}
		for _, value := range plain {
			if !strings.Contains(line.String(), value) {
				t.Fatalf("plain header value %q lost", value)
			}
		}
		if got := req.Headers.Get(keptName); got != keptValue {
			t.Fatalf("%s is %q, want %q kept", keptName, got, keptValue)
		}
	})
}

func TestRedactPropertyMatchesHeaderCount(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.SampledFrom(secretNames).Draw(t, "name")
		values := rapid.SliceOfN(rapid.StringMatching(`[ -~]{0,10}`), 1, 4).Draw(t, "values")
		req := sim.Request{Headers: http.Header{name: append([]string(nil), values...)}}

		sim.Redact(&req)

		require.Len(t, req.Headers[name], len(values))
		for i, value := range values {
			if value != "" && req.Headers[name][i] != sim.Redacted {
				t.Fatalf("value %d %q became %q, want %q", i, value, req.Headers[name][i], sim.Redacted)
			}
		}
	})
}
