package sim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/sim"
)

// webhooksHAR is a HAR file of four requests: a signed GitHub push with a
// pretty-printed body, a GitLab push whose body is in base64, a Workflow
// list over HTTP/2, and a GitHub ping sent with a bearer token over HTTP/2.
// The bodies are the files next to it.
const webhooksHAR = "testdata/webhooks.har"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

func readWebhooksHAR(t *testing.T, opts sim.HAROptions) []sim.Request {
	t.Helper()
	file, err := os.Open(webhooksHAR)
	require.NoError(t, err)
	defer file.Close()
	requests, entries, err := sim.ReadHAR(file, opts)
	require.NoError(t, err)
	require.Equal(t, 4, entries, "entries in %s, kept or not", webhooksHAR)
	return requests
}

func TestReadHARSignedGitHubPush(t *testing.T) {
	requests := readWebhooksHAR(t, sim.HAROptions{})

	require.Len(t, requests, 3, "the Workflow list is skipped")
	got := requests[0]
	assert.True(t, time.Date(2026, 12, 4, 10, 0, 0, 123e6, time.UTC).Equal(got.Time), "time %s", got.Time)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "/api/v1/events/argo", got.Path)
	assert.Equal(t, readTestdata(t, "github-push.json"), got.Body, "the pretty-printed body is kept byte for byte")
	assert.Equal(t, []string{sim.Redacted}, got.Headers["X-Hub-Signature-256"])
	assert.Equal(t, []string{"72d3162e-cc78-11e3-81ab-4c9367dc0958"}, got.Headers["X-Github-Delivery"])
	assert.Equal(t, []string{"push"}, got.Headers["X-Github-Event"])
	assert.NotContains(t, got.Headers, "Host", "Go's server moves Host out of the headers")
	assert.Equal(t, http.StatusOK, got.Status)
	assert.Equal(t, "72d3162e-cc78-11e3-81ab-4c9367dc0958", got.EventID)
	assert.Empty(t, got.Subject, "a HAR file does not say whom the server authenticated")
	assert.False(t, got.BodyIncomplete)
}

func TestReadHARBase64Body(t *testing.T) {
	requests := readWebhooksHAR(t, sim.HAROptions{})

	require.Len(t, requests, 3)
	got := requests[1]
	assert.True(t, time.Date(2026, 12, 4, 9, 0, 1, 0, time.UTC).Equal(got.Time), "time %s", got.Time)
	assert.Equal(t, readTestdata(t, "gitlab-push.json"), got.Body)
	assert.Equal(t, []string{sim.Redacted}, got.Headers["X-Gitlab-Token"])
	assert.Equal(t, []string{"13792a34-cac6-4fda-95a8-c58e00a3954e"}, got.Headers["X-Gitlab-Event-Uuid"])
	assert.Equal(t, "13792a34-cac6-4fda-95a8-c58e00a3954e", got.EventID)
}

func TestReadHARHTTP2Headers(t *testing.T) {
	requests := readWebhooksHAR(t, sim.HAROptions{})

	require.Len(t, requests, 3)
	got := requests[2]
	assert.Equal(t, "/api/v1/events/argo/ping?access_token="+sim.Redacted+"&dryRun=All", got.Path, "the fragment is dropped and the query token redacted")
	assert.Equal(t, http.Header{
		"Authorization":   {sim.Redacted},
		"Content-Type":    {"application/json"},
		"X-Github-Event":  {"ping"},
		"Idempotency-Key": {"ping-1"},
	}, got.Headers, "names are canonical, without pseudo-headers")
	assert.Equal(t, readTestdata(t, "github-ping.json"), got.Body)
	assert.Equal(t, http.StatusOK, got.Status)
	assert.Empty(t, got.EventID)
}

func TestReadHARAllPaths(t *testing.T) {
	requests := readWebhooksHAR(t, sim.HAROptions{AllPaths: true})

	require.Len(t, requests, 4)
	got := requests[2]
	assert.Equal(t, http.MethodGet, got.Method)
	assert.Equal(t, "/api/v1/workflows/argo", got.Path)
	assert.Empty(t, got.Body)
	assert.Equal(t, []string{sim.Redacted}, got.Headers["Authorization"])
}

// TestReadHARTestdataSigned checks that the GitHub entry carries the
// signature GitHub would send for its body with the fixtures' secret, so
// the server would accept it.
func TestReadHARTestdataSigned(t *testing.T) {
	var har struct {
		Log struct {
			Entries []struct {
				Request struct {
					Headers []struct{ Name, Value string }
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal(readTestdata(t, "webhooks.har"), &har))
	require.NotEmpty(t, har.Log.Entries)

	var signature string
	for _, header := range har.Log.Entries[0].Request.Headers {
		if header.Name == "X-Hub-Signature-256" {
			signature = header.Value
		}
	}
	assert.Equal(t, signGitHub("github-webhook-secret", readTestdata(t, "github-push.json")), signature)
}

func TestReadHARNoSecretInStream(t *testing.T) {
	requests := readWebhooksHAR(t, sim.HAROptions{AllPaths: true})
	var stream bytes.Buffer

	require.NoError(t, sim.WriteStream(&stream, requests))

	signature := signGitHub("github-webhook-secret", readTestdata(t, "github-push.json"))
	for _, secret := range []string{"admin-token", "gitlab-webhook-secret", "query-secret-value", strings.TrimPrefix(signature, "sha256=")} {
		assert.NotContains(t, stream.String(), secret)
	}
	back, err := sim.ReadStream(&stream)
	require.NoError(t, err)
	require.Len(t, back, len(requests))
	for i := range requests {
		assert.Equal(t, requests[i].Body, back[i].Body, "request %d body after a round trip through a stream", i)
	}
}

// harWithEntry returns a HAR file whose second entry is entry, after a
// valid first one, so errors must name index 1.
func harWithEntry(entry string) string {
	valid := `{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST", "url": "http://h/api/v1/events/argo"}}`
	return `{"log": {"entries": [` + valid + `, ` + entry + `]}}`
}

func TestReadHARErrors(t *testing.T) {
	cases := []struct {
		name      string
		har       string
		wantError string
	}{
		{name: "missing log", har: `{}`, wantError: `invalid HAR: missing "log"`},
		{name: "missing request", har: harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z"}`), wantError: "log.entries[1].request: missing"},
		{name: "missing time", har: harWithEntry(`{"request": {"method": "POST", "url": "/"}}`), wantError: "log.entries[1].startedDateTime: missing"},
		{name: "invalid time", har: harWithEntry(`{"startedDateTime": "yesterday", "request": {"method": "POST", "url": "/"}}`), wantError: `log.entries[1].startedDateTime: invalid time "yesterday"`},
		{name: "missing method", har: harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"url": "/"}}`), wantError: "log.entries[1].request.method: missing"},
		{name: "missing URL", har: harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST"}}`), wantError: "log.entries[1].request.url: missing"},
		{name: "invalid URL", har: harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST", "url": "http://[::1"}}`), wantError: "log.entries[1].request.url: invalid URL"},
		{
			name:      "invalid base64",
			har:       harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST", "url": "/", "postData": {"text": "!", "encoding": "base64"}}}`),
			wantError: "log.entries[1].request.postData.text: invalid base64",
		},
		{
			name:      "unsupported encoding",
			har:       harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST", "url": "/", "postData": {"text": "x", "encoding": "gzip"}}}`),
			wantError: `log.entries[1].request.postData.encoding: unsupported "gzip"`,
		},
		{
			name:      "params without text",
			har:       harWithEntry(`{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "POST", "url": "/", "postData": {"params": [{"name": "a", "value": "1"}]}}}`),
			wantError: "log.entries[1].request.postData.text: missing",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := sim.ReadHAR(strings.NewReader(tc.har), sim.HAROptions{AllPaths: true})

			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestReadHARJSONTypeErrors(t *testing.T) {
	const started = `"startedDateTime": "2026-12-04T10:00:00Z"`
	cases := []struct {
		name      string
		har       string
		wantError string
	}{
		{name: "file is an array", har: `[]`, wantError: `invalid HAR: the file must be an object, found an array`},
		{name: "log is an array", har: `{"log": []}`, wantError: `invalid HAR: "log" must be an object, found an array`},
		{name: "entries is an object", har: `{"log": {"entries": {}}}`, wantError: `invalid HAR: "log.entries" must be an array, found an object`},
		{name: "entry is a number", har: harWithEntry(`5`), wantError: `invalid HAR: "log.entries[1]" must be an object, found a number`},
		{name: "time is a number", har: harWithEntry(`{"startedDateTime": 5}`), wantError: `invalid HAR: "log.entries[1].startedDateTime" must be a string, found a number`},
		{
			name:      "headers is an object",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/", "headers": {"A": "b"}}}`),
			wantError: `invalid HAR: "log.entries[1].request.headers" must be an array, found an object`,
		},
		{
			name:      "header is a string",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/", "headers": ["A: b"]}}`),
			wantError: `invalid HAR: each item of "log.entries[1].request.headers" must be an object, found a string`,
		},
		{
			name:      "header name is a number",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/", "headers": [{"name": 1, "value": "b"}]}}`),
			wantError: `invalid HAR: "log.entries[1].request.headers[].name" must be a string, found a number`,
		},
		{
			name:      "body text is a boolean",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/", "postData": {"text": true}}}`),
			wantError: `invalid HAR: "log.entries[1].request.postData.text" must be a string, found a boolean`,
		},
		{
			name:      "status is a fraction",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/"}, "response": {"status": 200.5}}`),
			wantError: `invalid HAR: "log.entries[1].response.status" must be an integer, found 200.5`,
		},
		{
			name:      "status is a string",
			har:       harWithEntry(`{` + started + `, "request": {"method": "POST", "url": "/"}, "response": {"status": "200"}}`),
			wantError: `invalid HAR: "log.entries[1].response.status" must be an integer, found a string`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := sim.ReadHAR(strings.NewReader(tc.har), sim.HAROptions{AllPaths: true})

			require.Error(t, err)
			assert.Equal(t, tc.wantError, err.Error())
			var typeErr *json.UnmarshalTypeError
			assert.ErrorAs(t, err, &typeErr, "the error of encoding/json is behind Unwrap")
		})
	}
}

func TestReadHARJSONSyntaxErrors(t *testing.T) {
	cases := []struct {
		name      string
		har       string
		wantError string
	}{
		{name: "empty", har: "", wantError: `invalid HAR: the file is empty: a HAR file is one JSON object {"log": {"entries": [...]}}`},
		{name: "blank", har: " \n", wantError: `invalid HAR: the file is empty: a HAR file is one JSON object {"log": {"entries": [...]}}`},
		{name: "truncated", har: `{"log":`, wantError: `invalid HAR: invalid JSON at line 1, column 7: unexpected end of JSON input`},
		{name: "stray comma", har: "{\n  \"log\": {,}\n}", wantError: `invalid HAR: invalid JSON at line 2, column 11: invalid character ',' looking for beginning of object key string`},
		{name: "trailing text", har: `{"log": {"entries": []}} x`, wantError: `invalid HAR: invalid JSON at line 1, column 26: invalid character 'x' after top-level value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := sim.ReadHAR(strings.NewReader(tc.har), sim.HAROptions{})

			require.Error(t, err)
			assert.Equal(t, tc.wantError, err.Error())
		})
	}
}

func TestReadHARNoEntries(t *testing.T) {
	requests, entries, err := sim.ReadHAR(strings.NewReader(`{"log": {"version": "1.2", "entries": []}}`), sim.HAROptions{})

	require.NoError(t, err)
	assert.Empty(t, requests)
	assert.Zero(t, entries)
}
