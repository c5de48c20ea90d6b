package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/model"
)

// githubWebhookSecret is the secret of the github client in
// fixtures/cluster/webhook-clients.yaml.
const githubWebhookSecret = "github-webhook-secret"

// startWebhookApp runs the embedded app on seed behind an httptest server,
// with its Debug logs going to the test log and to the returned buffer.
func startWebhookApp(t testing.TB, seed *fixtures.Set) (*app.App, *httptest.Server, *syncBuffer) {
	t.Helper()

	logs := &syncBuffer{}
	var sequence atomic.Int64
	a, err := app.NewEmbedded(app.Config{
		Logger:     slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewEventID: func() string { return fmt.Sprintf("event-%d", sequence.Add(1)) },
	}, seed)
	require.NoError(t, err)

	syncCtx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	require.True(t, a.Start(syncCtx), "caches did not sync")
	t.Cleanup(a.Stop)

	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return a, srv, logs
}

func loadEmbeddedFixtures(t testing.TB) *fixtures.Set {
	t.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	return seed
}

func signGitHub(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// githubPushHeaders returns the headers GitHub sends with a push delivery of
// body signed with secret.
func githubPushHeaders(secret string, body []byte) map[string]string {
	return map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "GitHub-Hookshot/7b5e0c2",
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-GitHub-Hook-ID":    "292430182",
		"X-Hub-Signature-256": signGitHub(secret, body),
	}
}

// TestWebhookGitHubPushCreatesWorkflow sends a signed GitHub push, with no
// Authorization header, and checks that it creates the same Workflow as the
// github ServiceAccount's bearer token does.
func TestWebhookGitHubPushCreatesWorkflow(t *testing.T) {
	a, srv, logs := startWebhookApp(t, loadEmbeddedFixtures(t))
	pushBody, err := os.ReadFile("../../fixtures/webhooks/github/push.json")
	require.NoError(t, err)
	headers := githubPushHeaders(githubWebhookSecret, pushBody)

	status, body := postEvent(t, srv.URL+"/api/v1/events/argo", headers, bytes.NewReader(pushBody))
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, headers["X-GitHub-Delivery"], body["eventId"], "GitHub's delivery ID is the event ID")
	waitForIdle(t, a)

	created := createdWorkflows(a)
	require.Len(t, created, 1)
	assert.Equal(t, "system-serviceaccount-argo-github", created[0].GetLabels()[model.LabelCreator])
	assert.Equal(t, "github-push", created[0].GetLabels()[model.LabelWorkflowTemplate])

	// The golden file is the Workflow of the same delivery sent with the
	// github token: the same delivery ID, so the same event and name.
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "github-push.json"))
	require.NoError(t, err)
	want := &unstructured.Unstructured{}
	require.NoError(t, json.Unmarshal(golden, &want.Object))
	assert.Equal(t, want.Object, roundTripJSON(t, created[0]).Object)

	assert.NotContains(t, logs.String(), githubWebhookSecret)
	assert.NotContains(t, logs.String(), strings.TrimPrefix(headers["X-Hub-Signature-256"], "sha256="))
}

// roundTripJSON returns obj as json.Unmarshal reads it back, so it compares
// equal to an object read from a file.
func roundTripJSON(t testing.TB, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	data, err := json.Marshal(obj.Object)
	require.NoError(t, err)
	out := &unstructured.Unstructured{}
	require.NoError(t, json.Unmarshal(data, &out.Object))
	return out
}

func TestWebhookRejectedDeliveries(t *testing.T) {
	a, srv, logs := startWebhookApp(t, loadEmbeddedFixtures(t))
	pushBody, err := os.ReadFile("../../fixtures/webhooks/github/push.json")
	require.NoError(t, err)

	tests := []struct {
		name       string
		path       string
		headers    map[string]string
		wantStatus int
		wantText   string // substring of the error message
	}{
		{
			name:       "unsigned",
			path:       "/api/v1/events/argo",
			headers:    map[string]string{"X-GitHub-Event": "push"},
			wantStatus: http.StatusUnauthorized,
			wantText:   "missing Authorization header or valid webhook signature",
		},
		{
			name:       "wrong secret",
			path:       "/api/v1/events/argo",
			headers:    githubPushHeaders("not-the-secret", pushBody),
			wantStatus: http.StatusUnauthorized,
			wantText:   "missing Authorization header or valid webhook signature",
		},
		{
			name:       "namespace without Secret",
			path:       "/api/v1/events/default",
			headers:    githubPushHeaders(githubWebhookSecret, pushBody),
			wantStatus: http.StatusUnauthorized,
			wantText:   "missing Authorization header or valid webhook signature",
		},
		{
			name:       "cluster-scoped",
			path:       "/api/v1/events/",
			headers:    githubPushHeaders(githubWebhookSecret, pushBody),
			wantStatus: http.StatusUnauthorized,
			wantText:   "cluster-scoped event needs a bearer token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postEvent(t, srv.URL+tt.path, tt.headers, bytes.NewReader(pushBody))

			assert.Equal(t, tt.wantStatus, status, body)
			assert.Contains(t, body["message"], tt.wantText)
		})
	}

	waitForIdle(t, a)
	assert.Empty(t, createdWorkflows(a))
	assert.NotContains(t, logs.String(), githubWebhookSecret)
}

// TestWebhookUnknownTypeLoggedOnce adds an entry of an unknown type to the
// fixture Secret and checks that it is reported once, however many
// deliveries arrive, and that the other entries keep working.
func TestWebhookUnknownTypeLoggedOnce(t *testing.T) {
	seed := loadEmbeddedFixtures(t)
	var found bool
	for _, obj := range seed.Objects {
		if obj.GetKind() != "Secret" || obj.GetName() != model.WebhookClientsSecret {
			continue
		}
		require.NoError(t, unstructured.SetNestedField(obj.Object, "type: gitea\nsecret: gitea-webhook-secret\n", "stringData", "gitea"))
		found = true
	}
	require.True(t, found, "fixtures have no Secret %s", model.WebhookClientsSecret)
	a, srv, logs := startWebhookApp(t, seed)
	body := []byte(`{"zen": "Design for failure."}`)

	for range 2 {
		headers := map[string]string{"X-GitHub-Event": "issues", "X-Hub-Signature-256": signGitHub(githubWebhookSecret, body)}
		status, response := postEvent(t, srv.URL+"/api/v1/events/argo", headers, bytes.NewReader(body))
		require.Equal(t, http.StatusOK, status, response)
	}
	waitForIdle(t, a)

	assert.Equal(t, 1, strings.Count(logs.String(), "webhook client skipped"), "logs:\n%s", logs)
	assert.Contains(t, logs.String(), "service_account=gitea")
	assert.NotContains(t, logs.String(), "gitea-webhook-secret")
}

// TestClusterWebhookSignedDelivery checks webhook clients on a real API
// server: the informer finds the Secret through its field selector and
// follows its changes, a verified delivery creates its Workflow as the
// ServiceAccount, and a ServiceAccount without RBAC gets 403 from the
// SubjectAccessReview.
func TestClusterWebhookSignedDelivery(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	c.serviceAccount(t, namespace, "github", createWorkflows, getWorkflowTemplates)
	c.serviceAccount(t, namespace, "no-rbac")
	c.createTemplate(t, eventTemplate(namespace, "on-push", `metadata["x-github-event"] == ["push"]`))
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: model.WebhookClientsSecret},
		StringData: map[string]string{
			"github":  "type: github\nsecret: first-secret\n",
			"no-rbac": "type: gitlab\nsecret: no-rbac-secret\n",
		},
	}
	secrets := c.kube.CoreV1().Secrets(namespace)
	_, err := secrets.Create(t.Context(), secret, metav1.CreateOptions{})
	require.NoError(t, err)
	a, url := c.startApp(t, app.Config{})
	pushBody, err := os.ReadFile("../../fixtures/webhooks/github/push.json")
	require.NoError(t, err)
	eventsURL := url + "/api/v1/events/" + namespace

	// A signed push creates a Workflow as the github ServiceAccount.
	status, body := postEvent(t, eventsURL, githubPushHeaders("first-secret", pushBody), bytes.NewReader(pushBody))
	require.Equal(t, http.StatusOK, status, body)
	workflows := c.waitForWorkflows(t, namespace, 1)
	assert.Equal(t, "system-serviceaccount-"+namespace+"-github", workflows[0].GetLabels()[model.LabelCreator])

	// A verified ServiceAccount without RBAC is denied at admission.
	status, body = postEvent(t, eventsURL, map[string]string{"X-Gitlab-Token": "no-rbac-secret", "X-Gitlab-Event": "Push Hook"}, strings.NewReader(`{}`))
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body["message"], "system:serviceaccount:"+namespace+":no-rbac")

	// A new secret replaces the old one once the informer receives the update.
	secret.StringData = map[string]string{"github": "type: github\nsecret: second-secret\n"}
	_, err = secrets.Update(t.Context(), secret, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		clients := a.Webhooks.Clients(namespace)
		return len(clients) == 1 && clients[0].Secret == "second-secret"
	}, clusterWait, 20*time.Millisecond, "the Secret update did not reach the store")
	status, body = postEvent(t, eventsURL, githubPushHeaders("first-secret", pushBody), bytes.NewReader(pushBody))
	assert.Equal(t, http.StatusUnauthorized, status, body)
	// A new delivery: with the first one's delivery ID it would be a
	// redelivery, which creates nothing new.
	second := githubPushHeaders("second-secret", pushBody)
	second["X-GitHub-Delivery"] = "5e1b3c2a-0d4f-4a6b-8c7d-9e0f1a2b3c4d"
	status, body = postEvent(t, eventsURL, second, bytes.NewReader(pushBody))
	assert.Equal(t, http.StatusOK, status, body)
	c.waitForWorkflows(t, namespace, 2)
}
