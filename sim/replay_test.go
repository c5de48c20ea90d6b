package sim

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/fixtures"
)

func newTestReplayer(t *testing.T, cfg ReplayConfig) *Replayer {
	t.Helper()
	set, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	cfg.Fixtures = set
	replayer, err := NewReplayer(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(replayer.Close)
	return replayer
}

func bearerEvent(line int, message string) Request {
	return Request{
		Line:    line,
		Method:  http.MethodPost,
		Path:    "/api/v1/events/argo",
		Headers: http.Header{"Authorization": {Redacted}, "X-Argo-E2e": {"true"}},
		Body:    []byte(`{"message":"` + message + `"}`),
		Subject: "admin",
	}
}

func githubPush(t *testing.T, line int, delivery string) Request {
	t.Helper()
	body, err := os.ReadFile("../fixtures/webhooks/github/push.json")
	require.NoError(t, err)
	return Request{
		Line:   line,
		Method: http.MethodPost,
		Path:   "/api/v1/events/argo",
		Headers: http.Header{
			"X-Github-Event":      {"push"},
			"X-Github-Delivery":   {delivery},
			"X-Hub-Signature-256": {hmacSignature("github-webhook-secret", body)},
		},
		Body:    body,
		Subject: "system:serviceaccount:argo:github",
	}
}

func TestReplayBearerEventActsAsSubject(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})

	result := replayer.Replay(t.Context(), bearerEvent(1, "hello events"))

	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.Equal(t, "replay-1", result.EventID)
	assert.Equal(t, []string{"WorkflowTemplate/argo/event-consumer"}, result.Matched)
	require.Len(t, result.Workflows, 1)
	wf := result.Workflows[0]
	assert.Equal(t, "WorkflowTemplate/argo/event-consumer", wf.Resource)
	assert.Equal(t, "argo", wf.Namespace)
	assert.True(t, strings.HasPrefix(wf.Name, "event-consumer-"), wf.Name)
	assert.Equal(t, "WorkflowTemplate/event-consumer", wf.Template)
	assert.Equal(t, []Parameter{{Name: "message", Value: "hello events"}}, wf.Parameters)
	assert.False(t, wf.Existing)
}

func TestReplaySubjectChoices(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})

	missing := bearerEvent(1, "x")
	missing.Subject = ""
	result := replayer.Replay(t.Context(), missing)
	assert.Equal(t, http.StatusUnauthorized, result.Status, "a redacted token without a subject fails as a rejected token did")
	require.Len(t, result.Errors, 1)
	assert.Contains(t, result.Errors[0], "set \"subject\" on the line or pass --as SUBJECT")

	unknown := bearerEvent(2, "x")
	unknown.Subject = "mallory"
	result = replayer.Replay(t.Context(), unknown)
	assert.Equal(t, http.StatusUnauthorized, result.Status)
	require.Len(t, result.Errors, 1)
	assert.Contains(t, result.Errors[0], `subject "mallory" is not in the fixtures' tokens.csv`)

	realToken := bearerEvent(3, "x")
	realToken.Subject = ""
	realToken.Headers.Set("Authorization", "Bearer admin-token")
	result = replayer.Replay(t.Context(), realToken)
	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.Len(t, result.Workflows, 1)
}

func TestReplayAsOverridesSubject(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{As: "system:serviceaccount:argo:github"})

	result := replayer.Replay(t.Context(), bearerEvent(1, "hello"))

	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.Empty(t, result.Workflows, "event-consumer matches only the subject admin")
}

func TestReplaySignedDeliveries(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})

	first := replayer.Replay(t.Context(), githubPush(t, 1, "delivery-1"))
	assert.Equal(t, http.StatusOK, first.Status, first.Errors)
	assert.Equal(t, "delivery-1", first.EventID)
	require.Len(t, first.Workflows, 1)
	assert.Equal(t, "WorkflowTemplate/argo/github-push", first.Workflows[0].Resource)
	assert.False(t, first.Workflows[0].Existing)

	again := replayer.Replay(t.Context(), githubPush(t, 2, "delivery-1"))
	require.Len(t, again.Workflows, 1)
	assert.Equal(t, first.Workflows[0].Name, again.Workflows[0].Name, "a redelivery derives the same name")
	assert.True(t, again.Workflows[0].Existing)

	redacted := githubPush(t, 3, "delivery-2")
	redacted.Headers.Set("X-Hub-Signature-256", Redacted)
	rejected := replayer.Replay(t.Context(), redacted)
	assert.Equal(t, http.StatusUnauthorized, rejected.Status)
	require.Len(t, rejected.Errors, 1)
	assert.Contains(t, rejected.Errors[0], "--trust-signatures")
}

func TestReplayTrustSignaturesSignsAgain(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{TrustSignatures: true})

	redacted := githubPush(t, 1, "delivery-1")
	redacted.Headers.Set("X-Hub-Signature-256", Redacted)
	result := replayer.Replay(t.Context(), redacted)
	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.Len(t, result.Workflows, 1)

	unverified := githubPush(t, 3, "delivery-3")
	unverified.Subject = ""
	unverified.Headers.Set("X-Hub-Signature-256", Redacted)
	result = replayer.Replay(t.Context(), unverified)
	assert.Equal(t, http.StatusUnauthorized, result.Status, "a delivery the recording server did not verify is sent as recorded")
	require.Len(t, result.Errors, 1)
	assert.Contains(t, result.Errors[0], "set \"subject\" on the line to the ServiceAccount that signs it")

	stranger := githubPush(t, 2, "delivery-2")
	stranger.Subject = "system:serviceaccount:argo:nobody"
	result = replayer.Replay(t.Context(), stranger)
	assert.Zero(t, result.Status)
	require.Len(t, result.Errors, 1)
	assert.Contains(t, result.Errors[0], `has no client "nobody"`)
}

func TestDiffReportsNamesLine(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	requests := []Request{bearerEvent(1, "one"), bearerEvent(2, "two")}
	got := replayer.ReplayAll(t.Context(), requests)

	var buf bytes.Buffer
	require.NoError(t, WriteReportJSON(&buf, got))
	want, err := ReadReportJSON(&buf)
	require.NoError(t, err)
	assert.Empty(t, DiffReports(want, got))

	want.Events[1].Workflows[0].Parameters[0].Value = "three"
	diff := DiffReports(want, got)
	assert.Contains(t, diff, "line 2 (POST /api/v1/events/argo) differs")
	assert.Contains(t, diff, `"three"`)
	assert.NotContains(t, diff, "line 1")

	assert.Contains(t, DiffReports(Report{Events: got.Events[:1]}, got), "line 2 (POST /api/v1/events/argo): replayed, but the expected file has no such event")
}

func TestCheckExpectations(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	good := bearerEvent(1, "one")
	good.Expect = &Expectation{Status: http.StatusOK, Resources: []string{"WorkflowTemplate/argo/event-consumer"}}
	wrong := bearerEvent(2, "")
	wrong.Expect = &Expectation{Status: http.StatusAccepted, Resources: []string{"WorkflowTemplate/argo/event-consumer"}}
	requests := []Request{good, wrong}

	problems := CheckExpectations(requests, replayer.ReplayAll(t.Context(), requests))

	require.Len(t, problems, 2)
	assert.Equal(t, "line 2: status 200, expected 202", problems[0])
	assert.Equal(t, "line 2: Workflows from [], expected from [WorkflowTemplate/argo/event-consumer]", problems[1])
}

func TestReportTable(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	report := replayer.ReplayAll(t.Context(), []Request{bearerEvent(1, "hello events"), bearerEvent(2, "")})

	var buf bytes.Buffer
	require.NoError(t, WriteReportTable(&buf, report))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^LINE\s+STATUS\s+EVENT ID\s+MATCHED\s+WORKFLOW\s+PARAMETERS\s+ERRORS$`, lines[0])
	assert.Regexp(t, `^1\s+200\s+replay-1\s+1\s+event-consumer-\S+\s+message="hello events"\s+-$`, lines[1])
	assert.Regexp(t, `^2\s+200\s+replay-2\s+0\s+-\s+-\s+-$`, lines[2])
}

func TestReplayPingIsNotQueued(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	ping := githubPush(t, 1, "delivery-ping")
	ping.Body = []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	ping.Headers.Set("X-Github-Event", "ping")
	ping.Headers.Set("X-Hub-Signature-256", hmacSignature("github-webhook-secret", ping.Body))

	result := replayer.Replay(t.Context(), ping)
	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.False(t, result.Queued)
	assert.Empty(t, result.Workflows)

	result = replayer.Replay(t.Context(), bearerEvent(2, ""))
	assert.True(t, result.Queued, "an event that matches nothing is still queued")
	assert.Empty(t, result.Workflows)
}

func TestReplaySkipsIncompleteBody(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	partial := bearerEvent(1, "hello events")
	partial.Body = nil
	partial.BodyIncomplete = true
	partial.Status = http.StatusServiceUnavailable

	result := replayer.Replay(t.Context(), partial)

	assert.Zero(t, result.Status)
	assert.Empty(t, result.Workflows)
	require.Len(t, result.Errors, 1)
	assert.Contains(t, result.Errors[0], "not replayed: the recording server returned 503 without reading the whole body")
}

func TestReplayAsMustBeInTokens(t *testing.T) {
	set, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)

	_, err = NewReplayer(t.Context(), ReplayConfig{Fixtures: set, As: "bob"})

	require.Error(t, err)
	assert.Contains(t, err.Error(), `invalid --as "bob": the subject has no row in the fixtures' tokens.csv`)
}

func TestReplayDryRunListsMatches(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})
	dryRun := bearerEvent(1, "hello events")
	dryRun.Path += "?dryRun=All"

	result := replayer.Replay(t.Context(), dryRun)

	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
	assert.Equal(t, []string{"WorkflowTemplate/argo/event-consumer"}, result.Matched)
	assert.Empty(t, result.Workflows, "a dry run creates nothing")
	assert.False(t, result.Queued)
}

func TestReplayServesMetrics(t *testing.T) {
	replayer := newTestReplayer(t, ReplayConfig{})

	result := replayer.Replay(t.Context(), Request{Line: 1, Method: http.MethodGet, Path: "/metrics"})

	assert.Equal(t, http.StatusOK, result.Status, result.Errors)
}
