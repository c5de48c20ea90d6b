package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/sim"
)

// The fixtures directory and the checked-in streams, relative to this
// package.
var (
	fixturesDir = filepath.Join("..", "..", "..", "fixtures")
	streamsDir  = filepath.Join(fixturesDir, "streams")
)

// regenerateCommand is what a developer runs from the repository root when
// the checked-in streams are out of date.
const regenerateCommand = "go run ./sim/internal/streamgen -out fixtures/streams"

// readStreams reads every .jsonl file of dir, keyed by file name.
func readStreams(t testing.TB, dir string) map[string][]byte {
	t.Helper()

	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	require.NoError(t, err)
	files := make(map[string][]byte, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		files[filepath.Base(path)] = data
	}
	return files
}

// loadStream parses the checked-in stream name.
func loadStream(t testing.TB, name string) []sim.Request {
	t.Helper()

	file, err := os.Open(filepath.Join(streamsDir, name))
	require.NoError(t, err)
	defer file.Close()
	requests, err := sim.ReadStream(file)
	require.NoError(t, err, "read %s", name)
	return requests
}

// firstDifferentLine returns the 1-based number of the first line where a
// and b differ.
func firstDifferentLine(a, b []byte) int {
	linesA, linesB := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(linesA), len(linesB)) {
		if !bytes.Equal(linesA[i], linesB[i]) {
			return i + 1
		}
	}
	return min(len(linesA), len(linesB)) + 1
}

func TestStreamsMatchGenerator(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run([]string{"-fixtures", fixturesDir, "-out", dir}, io.Discard))

	want := readStreams(t, dir)
	got := readStreams(t, streamsDir)
	require.Equal(t, slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got)),
		"fixtures/streams has other .jsonl files than the generator writes: delete the ones it no longer writes, then run %s", regenerateCommand)
	for name, data := range want {
		if !bytes.Equal(data, got[name]) {
			t.Errorf("fixtures/streams/%s differs from the generator's output at line %d: run %s",
				name, firstDifferentLine(data, got[name]), regenerateCommand)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	encode := func() map[string][]byte {
		in, err := loadInputs(fixturesDir)
		require.NoError(t, err)
		streams, err := generate(in)
		require.NoError(t, err)
		encoded := make(map[string][]byte, len(streams))
		for name, requests := range streams {
			var buf bytes.Buffer
			require.NoError(t, sim.WriteStream(&buf, requests))
			encoded[name] = buf.Bytes()
		}
		return encoded
	}

	assert.Equal(t, encode(), encode())
}

// proof is a header that proves a webhook client's secret.
type proof struct {
	header     string
	clientType model.WebhookType
	signsBody  bool
}

var proofs = []proof{
	{header: "X-Hub-Signature-256", clientType: model.WebhookGitHub, signsBody: true},
	{header: "X-Gitlab-Token", clientType: model.WebhookGitLab},
	{header: "X-Hook-Uuid", clientType: model.WebhookBitbucket},
	{header: "X-Hub-Signature", clientType: model.WebhookBitbucketServer, signsBody: true},
}

// verifies reports whether value proves secret for body: for a signature,
// "sha256=" and the hex HMAC-SHA256 of body keyed with secret, and else
// the secret itself.
func verifies(p proof, value, secret string, body []byte) bool {
	if !p.signsBody {
		return value == secret
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal([]byte(value), []byte("sha256="+hex.EncodeToString(mac.Sum(nil))))
}

// TestSignedDeliveriesVerify checks every delivery without an Authorization
// header against the secrets of fixtures/cluster/webhook-clients.yaml: it
// verifies as the client its Subject names, unless it is expected to be
// rejected with 401, when it must not verify at all.
func TestSignedDeliveriesVerify(t *testing.T) {
	in, err := loadInputs(fixturesDir)
	require.NoError(t, err)

	deliveries := 0
	for name := range readStreams(t, streamsDir) {
		for i, req := range loadStream(t, name) {
			if req.Headers.Get("Authorization") != "" {
				continue
			}
			deliveries++

			var present []proof
			for _, p := range proofs {
				if len(req.Headers.Values(p.header)) > 0 {
					present = append(present, p)
				}
			}
			require.Len(t, present, 1, "%s line %d: want exactly one webhook proof header", name, i+1)
			p := present[0]
			require.Len(t, req.Headers.Values(p.header), 1, "%s line %d: %s sent more than once", name, i+1, p.header)

			client := in.clients[p.clientType]
			verified := verifies(p, req.Headers.Get(p.header), client.secret, req.Body)
			if req.Expect != nil && req.Expect.Status == http.StatusUnauthorized {
				assert.False(t, verified, "%s line %d: expected 401, but %s verifies", name, i+1, p.header)
				assert.Empty(t, req.Subject, "%s line %d: a rejected delivery authenticates no one", name, i+1)
				continue
			}
			assert.True(t, verified, "%s line %d: %s does not verify with the secret of client %q", name, i+1, p.header, client.name)
			assert.Equal(t, client.subject(), req.Subject, "%s line %d: subject", name, i+1)
		}
	}
	assert.Greater(t, deliveries, 0, "no signed deliveries found")
}

// TestBearerSubjectsMatchTokens checks that the subjects of bearer requests
// are those of the fixture tokens, with the namespaces the requests rely on.
func TestBearerSubjectsMatchTokens(t *testing.T) {
	set, err := fixtures.Load(os.DirFS(fixturesDir))
	require.NoError(t, err)

	admin, err := set.Tokens.Authenticate(t.Context(), "admin-token")
	require.NoError(t, err)
	assert.Equal(t, adminSubject, admin.Subject)
	assert.True(t, admin.MayUse(namespace))

	scoped, err := set.Tokens.Authenticate(t.Context(), "github-token")
	require.NoError(t, err)
	assert.Equal(t, namespacedSubject, scoped.Subject)
	assert.True(t, scoped.MayUse(namespace))
	assert.False(t, scoped.MayUse(namespaceNotAllowed))

	for i, req := range loadStream(t, "bearer.jsonl") {
		assert.Equal(t, []string{sim.Redacted}, req.Headers.Values("Authorization"), "bearer.jsonl line %d: the token is redacted", i+1)
		assert.Contains(t, []string{adminSubject, namespacedSubject}, req.Subject, "bearer.jsonl line %d", i+1)
	}
}

func TestWebhookBodiesCompact(t *testing.T) {
	for name := range readStreams(t, streamsDir) {
		for i, req := range loadStream(t, name) {
			if req.Headers.Get("Content-Type") != "application/json" {
				continue
			}
			var compact bytes.Buffer
			require.NoError(t, json.Compact(&compact, req.Body), "%s line %d", name, i+1)
			assert.Equal(t, compact.String(), string(req.Body), "%s line %d: the body is not compact JSON", name, i+1)
		}
	}
}

func TestBurstSpreadOverSpan(t *testing.T) {
	requests := loadStream(t, "burst.jsonl")
	require.Len(t, requests, burstEvents)

	gitHubPushes, bearers := 0, 0
	eventIDs := make(map[string]int)
	for i, req := range requests {
		assert.False(t, req.Time.Before(start), "line %d: %s is before the start", i+1, req.Time)
		assert.True(t, req.Time.Before(start.Add(burstSpan)), "line %d: %s is after the span", i+1, req.Time)
		if i > 0 {
			assert.False(t, req.Time.Before(requests[i-1].Time), "line %d: received before the line above", i+1)
		}
		if previous, seen := eventIDs[req.EventID]; seen {
			t.Errorf("line %d: event ID %s repeats line %d", i+1, req.EventID, previous)
		}
		eventIDs[req.EventID] = i + 1

		switch {
		case req.Headers.Get("X-Github-Event") == "push":
			gitHubPushes++
		case req.Headers.Get("Authorization") != "":
			bearers++
		}
	}
	assert.Less(t, requests[0].Time.Sub(start), 100*time.Millisecond, "the burst starts at once")
	assert.Greater(t, requests[len(requests)-1].Time.Sub(start), burstSpan-100*time.Millisecond, "the burst lasts the whole span")
	assert.Equal(t, 250, gitHubPushes)
	assert.Equal(t, 150, bearers)
}

func TestGitHubBranchPush(t *testing.T) {
	tagPush := []byte(`{"ref":"refs/tags/simple-tag","before":"6113728f"}`)

	branchPush, err := gitHubBranchPush(tagPush)

	require.NoError(t, err)
	assert.Equal(t, `{"ref":"refs/heads/main","before":"6113728f"}`, string(branchPush))

	_, err = gitHubBranchPush([]byte(`{"ref":"refs/heads/other"}`))
	assert.ErrorContains(t, err, "0 times, want once")
}

func TestRunRejectsArguments(t *testing.T) {
	var stderr strings.Builder

	err := run([]string{"-out", t.TempDir(), "extra"}, &stderr)

	assert.ErrorContains(t, err, `unexpected argument "extra"`)
}
