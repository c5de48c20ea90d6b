package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/model"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// startApp runs the embedded-mode assembly on the built-in fixtures behind
// an httptest server. Event IDs are event-1, event-2 and so on.
func startApp(t testing.TB, configure ...func(*app.Config)) (*app.App, *httptest.Server) {
	t.Helper()

	seed, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	var sequence atomic.Int64
	cfg := app.Config{
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewEventID: func() string { return fmt.Sprintf("event-%d", sequence.Add(1)) },
	}
	for _, change := range configure {
		change(&cfg)
	}
	a, err := app.NewEmbedded(cfg, seed)
	require.NoError(t, err)

	syncCtx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	require.True(t, a.Start(syncCtx), "template caches did not sync")
	t.Cleanup(a.Stop)

	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return a, srv
}

// postEvent sends body to path with the headers and returns the status and
// the decoded response body.
func postEvent(t testing.TB, url string, headers map[string]string, body io.Reader) (int, map[string]any) {
	t.Helper()

	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()

	var decoded map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&decoded))
	return resp.StatusCode, decoded
}

// createdWorkflows returns the Workflow objects the fake cluster was asked
// to create, in order. The recorded object is the one sent, before the fake
// generated its name.
func createdWorkflows(a *app.App) []*unstructured.Unstructured {
	var created []*unstructured.Unstructured
	for _, action := range a.Fake.Actions() {
		create, ok := action.(k8stesting.CreateAction)
		if !ok || action.GetResource() != kube.WorkflowsResource {
			continue
		}
		created = append(created, create.GetObject().(*unstructured.Unstructured))
	}
	return created
}

// waitForIdle waits until the pipeline holds no event.
func waitForIdle(t testing.TB, a *app.App) {
	t.Helper()
	require.Eventually(t, func() bool { return a.Pipeline.Depth() == 0 }, 10*time.Second, 5*time.Millisecond,
		"events still held by the pipeline")
}

func TestEventsCreateWorkflows(t *testing.T) {
	a, srv := startApp(t)
	pushBody, err := os.ReadFile("../../fixtures/webhooks/github/push.json")
	require.NoError(t, err)

	// The reference example of the events design.
	status, body := postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
		"Authorization": "Bearer admin-token",
		"X-Argo-E2E":    "true",
		"Content-Type":  "application/x-www-form-urlencoded",
	}, strings.NewReader(`{"message": "hello events"}`))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "event-1", body["eventId"])
	waitForIdle(t, a)

	// A GitHub push delivery, with the headers GitHub sends.
	status, body = postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
		"Authorization":       "Bearer github-token",
		"Content-Type":        "application/json",
		"User-Agent":          "GitHub-Hookshot/7b5e0c2",
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-GitHub-Hook-ID":    "292430182",
		"X-Hub-Signature-256": "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c",
	}, strings.NewReader(string(pushBody)))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "72d3162e-cc78-11e3-81ab-4c9367dc0958", body["eventId"], "GitHub's delivery ID is the event ID")
	waitForIdle(t, a)

	created := createdWorkflows(a)
	require.Len(t, created, 2, "want one Workflow per event")
	assertGolden(t, "seed-example.json", created[0])
	assertGolden(t, "github-push.json", created[1])
}

func TestEventsMatchNothing(t *testing.T) {
	a, srv := startApp(t)

	cases := []struct {
		name    string
		token   string
		headers map[string]string
		body    string
	}{
		{name: "caller is not admin", token: "github-token", headers: map[string]string{"X-Argo-E2E": "true"}, body: `{"message": "hello"}`},
		{name: "header missing", token: "admin-token", body: `{"message": "hello"}`},
		{name: "header value differs", token: "admin-token", headers: map[string]string{"X-Argo-E2E": "true, true"}, body: `{"message": "hello"}`},
		{name: "empty message", token: "admin-token", headers: map[string]string{"X-Argo-E2E": "true"}, body: `{"message": ""}`},
		{name: "other GitHub event", token: "github-token", headers: map[string]string{"X-GitHub-Event": "ping"}, body: `{"zen": "Keep it logically awesome."}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Authorization": "Bearer " + tc.token}
			for name, value := range tc.headers {
				headers[name] = value
			}
			status, body := postEvent(t, srv.URL+"/api/v1/events/argo", headers, strings.NewReader(tc.body))
			require.Equal(t, http.StatusOK, status, body)
		})
	}

	waitForIdle(t, a)
	assert.Empty(t, createdWorkflows(a))
}

func TestListWorkflowsShowsCreated(t *testing.T) {
	a, srv := startApp(t)

	status, body := postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
		"Authorization": "Bearer admin-token",
		"X-Argo-E2E":    "true",
	}, strings.NewReader(`{"message": "hello events"}`))
	require.Equal(t, http.StatusOK, status, body)
	waitForIdle(t, a)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/workflows/argo", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	assert.Equal(t, "WorkflowList", list.Kind)
	require.Len(t, list.Items, 1)

	wf := &unstructured.Unstructured{Object: list.Items[0]}
	assert.Regexp(t, `^event-consumer-[a-z2-7]{10}$`, wf.GetName(), "the name is derived from the event")
	parameters, _, err := unstructured.NestedSlice(wf.Object, "spec", "arguments", "parameters")
	require.NoError(t, err)
	assert.Equal(t, []any{map[string]any{"name": "message", "value": "hello events"}}, parameters)
}

// assertGolden compares obj, as indented JSON, with testdata/golden/name.
// With -update it rewrites the file instead.
func assertGolden(t *testing.T, name string, obj *unstructured.Unstructured) {
	t.Helper()

	got, err := json.MarshalIndent(obj.Object, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/wfevents -update to create the golden file")
	assert.Equal(t, string(want), string(got), "created Workflow differs from %s", path)
}

func TestEventsRejectedWhileShuttingDown(t *testing.T) {
	a, srv := startApp(t)
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	left, err := a.Pipeline.Shutdown(ctx)
	require.NoError(t, err)
	require.Zero(t, left)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/events/argo", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()

	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}

func TestEventsSynchronousDispatch(t *testing.T) {
	a, srv := startApp(t, func(cfg *app.Config) { cfg.SyncDispatch = true })

	status, body := postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
		"Authorization": "Bearer admin-token",
		"X-Argo-E2E":    "true",
	}, strings.NewReader(`{"message": "hello events"}`))

	require.Equal(t, http.StatusOK, status, body)
	workflows, _ := body["workflows"].([]any)
	require.Len(t, workflows, 1, "the response lists the created Workflow")
	listed := workflows[0].(map[string]any)
	assert.Equal(t, "WorkflowTemplate/argo/event-consumer", listed["resource"])
	assert.Regexp(t, `^event-consumer-[a-z2-7]{10}$`, listed["name"])
	assert.Zero(t, a.Pipeline.Depth(), "nothing went through the queue")
	require.Len(t, createdWorkflows(a), 1, "created before the response")
}

func TestRedeliveryCreatesNothingNew(t *testing.T) {
	a, srv := startApp(t)
	pushBody, err := os.ReadFile("../../fixtures/webhooks/github/push.json")
	require.NoError(t, err)
	push := func(delivery string) string {
		t.Helper()
		status, body := postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
			"Authorization":     "Bearer github-token",
			"X-GitHub-Event":    "push",
			"X-GitHub-Delivery": delivery,
		}, strings.NewReader(string(pushBody)))
		require.Equal(t, http.StatusOK, status, body)
		waitForIdle(t, a)
		return body["eventId"].(string)
	}
	keyed := func(key string) string {
		t.Helper()
		status, body := postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{
			"Authorization":   "Bearer admin-token",
			"X-Argo-E2E":      "true",
			"Idempotency-Key": key,
		}, strings.NewReader(`{"message": "once"}`))
		require.Equal(t, http.StatusOK, status, body)
		waitForIdle(t, a)
		return body["eventId"].(string)
	}

	first := push("0b9e2f3a-5c1d-4e6f-8a7b-9c0d1e2f3a4b")
	again := push("0b9e2f3a-5c1d-4e6f-8a7b-9c0d1e2f3a4b")
	other := push("1c0f3a4b-6d2e-4f70-9b8c-0d1e2f3a4b5c")
	keyedFirst := keyed("order-42")
	keyedAgain := keyed("order-42")

	assert.Equal(t, first, again, "a redelivery answers with the original event ID")
	assert.NotEqual(t, first, other)
	assert.Equal(t, keyedFirst, keyedAgain)
	assert.Regexp(t, `^k-[0-9a-f]{40}$`, keyedFirst, "an Idempotency-Key is hashed with the caller")

	// Every create was attempted, but each event has one Workflow.
	items, err := a.Fake.Resource(kube.WorkflowsResource).Namespace("argo").List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	perEvent := make(map[string]int)
	for _, item := range items.Items {
		perEvent[item.GetLabels()[model.LabelEventID]]++
	}
	assert.Equal(t, map[string]int{first: 1, other: 1, keyedFirst: 1}, perEvent)
}
