package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
)

// missingSignature starts the message of every request rejected for lacking
// both a bearer token and a valid webhook signature.
const missingSignature = "missing Authorization header or valid webhook signature"

// fakeWebhookClients returns fixed clients, keyed by namespace.
type fakeWebhookClients map[string][]model.WebhookClient

func (f fakeWebhookClients) Clients(namespace string) []model.WebhookClient { return f[namespace] }

// webhookProvider is a webhook sender with one of its real deliveries.
type webhookProvider struct {
	typ    model.WebhookType
	secret string
	// header carries the signature or the secret.
	header string
	// payload is a file under testdata/webhooks.
	payload string
	// headers are the other headers the provider sends with payload.
	headers map[string]string
}

// serviceAccount is the ServiceAccount each provider's client acts as.
func (p webhookProvider) serviceAccount() string { return string(p.typ) }

// signsBody reports whether the provider's header is an HMAC of the body.
func (p webhookProvider) signsBody() bool {
	return p.typ == model.WebhookGitHub || p.typ == model.WebhookBitbucketServer
}

// proof returns the header value that proves secret for body.
func (p webhookProvider) proof(secret string, body []byte) string {
	if p.signsBody() {
		return signSHA256(secret, body)
	}
	return secret
}

var webhookProviders = []webhookProvider{
	{
		typ:     model.WebhookGitHub,
		secret:  "github-webhook-secret",
		header:  "X-Hub-Signature-256",
		payload: "github/push.json",
		headers: map[string]string{
			"X-GitHub-Event":    "push",
			"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			"X-GitHub-Hook-ID":  "292430182",
			"User-Agent":        "GitHub-Hookshot/7b5e0c2",
			"Content-Type":      "application/json",
		},
	},
	{
		typ:     model.WebhookGitLab,
		secret:  "gitlab-webhook-secret",
		header:  "X-Gitlab-Token",
		payload: "gitlab/push.json",
		headers: map[string]string{
			"X-Gitlab-Event":        "Push Hook",
			"X-Gitlab-Event-UUID":   "13792a34-cac6-4fda-95a8-c58e00a3954e",
			"X-Gitlab-Instance":     "https://gitlab.example.invalid",
			"X-Gitlab-Webhook-UUID": "8b4b6b0c-8f7a-4d7e-9f1e-2b0b7d3c5a11",
			"User-Agent":            "GitLab/17.0.0",
			"Content-Type":          "application/json",
		},
	},
	{
		typ:     model.WebhookBitbucket,
		secret:  "4c8d2f43-9b1a-4f3e-8a57-0d6f2e1b9c74",
		header:  "X-Hook-UUID",
		payload: "bitbucket/repo-push.json",
		headers: map[string]string{
			"X-Event-Key":      "repo:push",
			"X-Request-UUID":   "e0b8a6a2-3c1d-4b8e-9f2a-5d7c6b4a3e21",
			"X-Attempt-Number": "1",
			"User-Agent":       "Bitbucket-Webhooks/2.0",
			"Content-Type":     "application/json",
		},
	},
	{
		typ:     model.WebhookBitbucketServer,
		secret:  "bitbucketserver-webhook-secret",
		header:  "X-Hub-Signature",
		payload: "bitbucket-server/repo-refs_changed.json",
		headers: map[string]string{
			"X-Event-Key":  "repo:refs_changed",
			"X-Request-Id": "b6a3c0f2-1d4e-4c5b-8a7f-9e2d1c0b3a64",
			"Content-Type": "application/json; charset=utf-8",
		},
	},
}

// argoWebhookClients lists one client per provider in namespace argo, out of
// name order, so the tests check the handler's own ordering.
func argoWebhookClients() fakeWebhookClients {
	var clients []model.WebhookClient
	for i := len(webhookProviders) - 1; i >= 0; i-- {
		p := webhookProviders[i]
		clients = append(clients, model.WebhookClient{Name: p.serviceAccount(), Type: p.typ, Secret: model.Token(p.secret)})
	}
	return fakeWebhookClients{"argo": clients}
}

// newWebhookHarness returns a harness whose Server checks signatures against
// clients, and the buffer its logs also go to.
func newWebhookHarness(t testing.TB, clients server.WebhookClients, configure ...func(*server.Config)) (*harness, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	h := newHarness(t, append([]func(*server.Config){func(cfg *server.Config) {
		cfg.WebhookClients = clients
		cfg.Logger = newTestLogger(t, io.MultiWriter(t.Output(), logs))
	}}, configure...)...)
	return h, logs
}

// readWebhookPayload reads a real delivery body from testdata/webhooks.
func readWebhookPayload(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	require.NoError(t, err)
	return body
}

// newWebhookRequest returns a POST of body without an Authorization header,
// with headers set.
func newWebhookRequest(t testing.TB, path string, body io.Reader, headers map[string]string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, body)
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	return req
}

func signSHA256(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func signSHA1(secret string, body []byte) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(body)
	return "sha1=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookCase is one request of a provider's delivery.
type webhookCase struct {
	name string
	// proof holds the values of the provider's header, none to omit it.
	proof        []string
	wantStatus   int
	wantBodyRead bool
}

// webhookCases returns the valid delivery of p and the ways to get it wrong.
func webhookCases(p webhookProvider, body []byte) []webhookCase {
	valid := p.proof(p.secret, body)
	cases := []webhookCase{
		{name: "valid", proof: []string{valid}, wantStatus: http.StatusOK, wantBodyRead: true},
		{name: "wrong secret", proof: []string{p.proof("other-secret", body)}, wantStatus: http.StatusUnauthorized, wantBodyRead: p.signsBody()},
		{name: "missing", wantStatus: http.StatusUnauthorized},
		{name: "empty", proof: []string{""}, wantStatus: http.StatusUnauthorized},
		{name: "sent twice", proof: []string{valid, valid}, wantStatus: http.StatusUnauthorized},
	}
	if !p.signsBody() {
		return append(cases,
			webhookCase{name: "truncated", proof: []string{p.secret[:len(p.secret)-1]}, wantStatus: http.StatusUnauthorized},
			webhookCase{name: "extra space", proof: []string{p.secret + " "}, wantStatus: http.StatusUnauthorized},
		)
	}
	return append(cases,
		webhookCase{name: "other body", proof: []string{p.proof(p.secret, []byte(`{}`))}, wantStatus: http.StatusUnauthorized, wantBodyRead: true},
		webhookCase{name: "truncated", proof: []string{"sha256=abc"}, wantStatus: http.StatusUnauthorized},
		webhookCase{name: "truncated by one digit", proof: []string{valid[:len(valid)-1]}, wantStatus: http.StatusUnauthorized},
		webhookCase{name: "prefix only", proof: []string{"sha256="}, wantStatus: http.StatusUnauthorized},
		webhookCase{name: "sha1", proof: []string{signSHA1(p.secret, body)}, wantStatus: http.StatusUnauthorized},
		webhookCase{name: "no prefix", proof: []string{strings.TrimPrefix(valid, "sha256=")}, wantStatus: http.StatusUnauthorized},
		webhookCase{name: "not hex", proof: []string{"sha256=" + strings.Repeat("zz", sha256.Size)}, wantStatus: http.StatusUnauthorized},
	)
}

func TestWebhookProviders(t *testing.T) {
	for _, p := range webhookProviders {
		body := readWebhookPayload(t, p.payload)
		wantPayload, err := matcher.DecodeJSON(body)
		require.NoError(t, err)

		for _, tc := range webhookCases(p, body) {
			t.Run(string(p.typ)+"/"+tc.name, func(t *testing.T) {
				h, logs := newWebhookHarness(t, argoWebhookClients())
				var queued *model.Event
				if tc.wantStatus == http.StatusOK {
					queued = h.expectEnqueue()
				}
				reader := &countingReader{r: bytes.NewReader(body)}
				req := newWebhookRequest(t, "/api/v1/events/argo", reader, p.headers)
				for _, value := range tc.proof {
					req.Header.Add(p.header, value)
				}

				rec := h.serve(t, req)

				require.Equal(t, tc.wantStatus, rec.Code, "body: %s", rec.Body)
				assert.Equal(t, tc.wantBodyRead, reader.n > 0, "body read: %d bytes", reader.n)
				assert.NotContains(t, rec.Body.String(), p.secret, "response contains the secret")
				for _, value := range tc.proof {
					if value != "" {
						assert.NotContains(t, logs.String(), value, "log contains the signature header")
					}
				}
				assert.NotContains(t, logs.String(), p.secret, "log contains the secret")

				if tc.wantStatus != http.StatusOK {
					errBody := decodeError(t, rec)
					assert.Equal(t, model.CodeUnauthenticated, errBody.Code)
					assert.Contains(t, errBody.Message, missingSignature)
					assert.Equal(t, !tc.wantBodyRead, rec.Header().Get("Connection") == "close", "connection closed when the body is unread")
					return
				}

				// The provider's delivery ID, when it sends one, is the event ID.
				var response server.EventResponse
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &response))
				assert.Equal(t, queued.ID, response.EventID)
				wantID := "event-1"
				for _, name := range []string{"X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Request-UUID"} {
					if id, ok := p.headers[name]; ok {
						wantID = id
						break
					}
				}
				assert.Equal(t, wantID, response.EventID)
				assert.Equal(t, "system:serviceaccount:argo:"+p.serviceAccount(), queued.Caller.Subject)
				assert.Equal(t, []string{"system:serviceaccounts", "system:serviceaccounts:argo", "system:authenticated"}, queued.Caller.Groups)
				assert.Equal(t, "argo", queued.Namespace)
				assert.Equal(t, wantPayload, queued.Payload)

				env := matcher.NewEnv(*queued)
				for _, name := range []string{"x-hub-signature-256", "x-hub-signature", "x-gitlab-token", "x-hook-uuid"} {
					assert.NotContains(t, env.Metadata, name, "expression environment exposes a secret header")
				}
				for name, value := range p.headers {
					if strings.HasPrefix(strings.ToLower(name), "x-") {
						assert.Equal(t, []string{value}, env.Metadata[strings.ToLower(name)], "header %s", name)
					}
				}
			})
		}
	}
}

// TestWebhookGitHubSendsLegacySignature checks a delivery as GitHub sends it
// when a secret is set: with the SHA-256 signature and the legacy SHA-1 one
// in X-Hub-Signature, which a github client ignores.
func TestWebhookGitHubSendsLegacySignature(t *testing.T) {
	github := webhookProviders[0]
	body := readWebhookPayload(t, github.payload)
	h, _ := newWebhookHarness(t, argoWebhookClients())
	queued := h.expectEnqueue()
	req := newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), github.headers)
	req.Header.Set("X-Hub-Signature-256", signSHA256(github.secret, body))
	req.Header.Set("X-Hub-Signature", signSHA1(github.secret, body))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, "system:serviceaccount:argo:github", queued.Caller.Subject)
}

func TestWebhookPathForms(t *testing.T) {
	github := webhookProviders[0]
	body := readWebhookPayload(t, github.payload)

	tests := []struct {
		name              string
		path              string
		wantDiscriminator string
	}{
		{name: "namespace", path: "/api/v1/events/argo"},
		{name: "trailing slash", path: "/api/v1/events/argo/"},
		{name: "discriminator", path: "/api/v1/events/argo/github", wantDiscriminator: "github"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newWebhookHarness(t, argoWebhookClients())
			queued := h.expectEnqueue()
			req := newWebhookRequest(t, tt.path, bytes.NewReader(body), github.headers)
			req.Header.Set(github.header, signSHA256(github.secret, body))

			rec := h.serve(t, req)

			require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
			assert.Equal(t, "argo", queued.Namespace)
			assert.Equal(t, tt.wantDiscriminator, queued.Discriminator)
		})
	}
}

// TestWebhookWithoutClients checks that a delivery to a namespace without
// webhook clients gets 401, as for a wrong signature, and not 403.
func TestWebhookWithoutClients(t *testing.T) {
	github := webhookProviders[0]
	body := readWebhookPayload(t, github.payload)
	signature := signSHA256(github.secret, body)

	tests := []struct {
		name          string
		clients       fakeWebhookClients
		namespace     string
		wantNamespace string // quoted in the message
	}{
		{name: "no Secret", clients: argoWebhookClients(), namespace: "team-b"},
		{name: "Secret without usable entries", clients: fakeWebhookClients{"team-b": {}}, namespace: "team-b"},
		{name: "no Secret anywhere", clients: fakeWebhookClients{}, namespace: "argo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newWebhookHarness(t, tt.clients)
			req := newWebhookRequest(t, "/api/v1/events/"+tt.namespace, unreadBody{t: t}, github.headers)
			req.Header.Set(github.header, signature)

			rec := h.serve(t, req)

			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			errBody := decodeError(t, rec)
			assert.Equal(t, model.CodeUnauthenticated, errBody.Code)
			assert.Contains(t, errBody.Message, missingSignature)
			assert.Contains(t, errBody.Message, `namespace "`+tt.namespace+`"`)
			assert.Contains(t, errBody.Message, model.WebhookClientsSecret)
		})
	}
}

func TestWebhookClusterScoped(t *testing.T) {
	github := webhookProviders[0]
	body := readWebhookPayload(t, github.payload)

	for _, path := range []string{"/api/v1/events/", "/api/v1/events//github"} {
		t.Run(path, func(t *testing.T) {
			h, _ := newWebhookHarness(t, fakeWebhookClients{"": argoWebhookClients()["argo"]})
			req := newWebhookRequest(t, path, unreadBody{t: t}, github.headers)
			req.Header.Set(github.header, signSHA256(github.secret, body))

			rec := h.serve(t, req)

			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			errBody := decodeError(t, rec)
			assert.Equal(t, model.CodeUnauthenticated, errBody.Code)
			assert.Contains(t, errBody.Message, "cluster-scoped event needs a bearer token")
			assert.Contains(t, errBody.Message, "/api/v1/events/{namespace}")
		})
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	const limit = 1024

	// maxOverread is how far past the limit the handler may read:
	// http.MaxBytesReader reads one byte more to tell a body of exactly the
	// limit from a larger one.
	const maxOverread = 1

	tests := []struct {
		name       string
		size       int // bytes in the body, a JSON string
		wantStatus int
	}{
		{name: "at limit", size: limit, wantStatus: http.StatusOK},
		{name: "one over", size: limit + 1, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "far over", size: 1 << 20, wantStatus: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newWebhookHarness(t, argoWebhookClients(), func(cfg *server.Config) { cfg.MaxBodyBytes = limit })
			if tt.wantStatus == http.StatusOK {
				h.expectEnqueue()
			}
			body := []byte(`"` + strings.Repeat("a", tt.size-2) + `"`)
			reader := &countingReader{r: bytes.NewReader(body)}
			req := newWebhookRequest(t, "/api/v1/events/argo", reader, map[string]string{"X-GitHub-Event": "push"})
			req.Header.Set("X-Hub-Signature-256", signSHA256("github-webhook-secret", body))

			rec := h.serve(t, req)

			require.Equal(t, tt.wantStatus, rec.Code, "body: %s", rec.Body)
			assert.LessOrEqual(t, reader.n, int64(limit+maxOverread), "bytes read from the body")
			if tt.wantStatus == http.StatusOK {
				return
			}
			errBody := decodeError(t, rec)
			assert.Equal(t, model.CodeResourceExhausted, errBody.Code)
			assert.Contains(t, errBody.Message, "1024 bytes")
		})
	}
}

func TestWebhookInvalidJSON(t *testing.T) {
	body := []byte(`{"ref": `)
	h, _ := newWebhookHarness(t, argoWebhookClients())
	req := newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), map[string]string{"X-GitHub-Event": "push"})
	req.Header.Set("X-Hub-Signature-256", signSHA256("github-webhook-secret", body))

	rec := h.serve(t, req)

	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, model.CodeInvalid, decodeError(t, rec).Code)
}

func TestWebhookGitHubPing(t *testing.T) {
	body := readWebhookPayload(t, "github/ping.json")
	github := webhookProviders[0]
	const delivery = "b1f4a5e0-1d2c-11ef-8a9b-0242ac120002"

	tests := []struct {
		name        string
		signature   string
		delivery    string
		wantStatus  int
		wantEventID string
	}{
		{name: "valid", signature: signSHA256(github.secret, body), delivery: delivery, wantStatus: http.StatusOK, wantEventID: delivery},
		{name: "without delivery ID", signature: signSHA256(github.secret, body), wantStatus: http.StatusOK, wantEventID: testEventID},
		{name: "wrong secret", signature: signSHA256("other-secret", body), delivery: delivery, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The strict Queue mock expects nothing, so it fails the test
			// if the ping is queued.
			h, logs := newWebhookHarness(t, argoWebhookClients())
			headers := map[string]string{"X-GitHub-Event": "ping", "Content-Type": "application/json"}
			if tt.delivery != "" {
				headers["X-GitHub-Delivery"] = tt.delivery
			}
			req := newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), headers)
			req.Header.Set(github.header, tt.signature)

			rec := h.serve(t, req)

			require.Equal(t, tt.wantStatus, rec.Code, "body: %s", rec.Body)
			if tt.wantStatus != http.StatusOK {
				return
			}
			assert.JSONEq(t, fmt.Sprintf(`{"eventId":%q}`, tt.wantEventID), rec.Body.String())
			assert.Equal(t, tt.wantEventID, rec.Header().Get("X-Event-Id"))
			assert.Contains(t, logs.String(), "github ping acknowledged")
			assert.Contains(t, logs.String(), tt.wantEventID)
		})
	}
}

// TestWebhookPingHeaderFromOtherProvider checks that only a github client's
// delivery counts as a GitHub ping.
func TestWebhookPingHeaderFromOtherProvider(t *testing.T) {
	body := []byte(`{"zen": "not from GitHub"}`)
	h, _ := newWebhookHarness(t, argoWebhookClients())
	queued := h.expectEnqueue()
	req := newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), map[string]string{"X-GitHub-Event": "ping"})
	req.Header.Set("X-Gitlab-Token", "gitlab-webhook-secret")

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, "system:serviceaccount:argo:gitlab", queued.Caller.Subject)
}

func TestWebhookFirstVerifiedClientWins(t *testing.T) {
	body := []byte(`{"ref": "refs/heads/main"}`)
	signature := signSHA256("shared-secret", body)

	tests := []struct {
		name        string
		clients     []model.WebhookClient
		headers     map[string]string
		wantSubject string // "" means 401
	}{
		{
			name: "both verify",
			clients: []model.WebhookClient{
				{Name: "b-second", Type: model.WebhookGitHub, Secret: "shared-secret"},
				{Name: "a-first", Type: model.WebhookGitHub, Secret: "shared-secret"},
			},
			headers:     map[string]string{"X-Hub-Signature-256": signature},
			wantSubject: "system:serviceaccount:argo:a-first",
		},
		{
			name: "only second verifies",
			clients: []model.WebhookClient{
				{Name: "a-first", Type: model.WebhookGitHub, Secret: "other-secret"},
				{Name: "b-second", Type: model.WebhookGitHub, Secret: "shared-secret"},
			},
			headers:     map[string]string{"X-Hub-Signature-256": signature},
			wantSubject: "system:serviceaccount:argo:b-second",
		},
		{
			name: "token client first by name",
			clients: []model.WebhookClient{
				{Name: "b-github", Type: model.WebhookGitHub, Secret: "shared-secret"},
				{Name: "a-gitlab", Type: model.WebhookGitLab, Secret: "gitlab-secret"},
			},
			headers:     map[string]string{"X-Hub-Signature-256": signature, "X-Gitlab-Token": "gitlab-secret"},
			wantSubject: "system:serviceaccount:argo:a-gitlab",
		},
		{
			name: "unknown type skipped",
			clients: []model.WebhookClient{
				{Name: "a-gitea", Type: "gitea", Secret: "shared-secret"},
				{Name: "b-github", Type: model.WebhookGitHub, Secret: "shared-secret"},
			},
			headers:     map[string]string{"X-Hub-Signature-256": signature, "X-Gitea-Signature": strings.TrimPrefix(signature, "sha256=")},
			wantSubject: "system:serviceaccount:argo:b-github",
		},
		{
			name:    "empty secret never verifies",
			clients: []model.WebhookClient{{Name: "a-gitlab", Type: model.WebhookGitLab, Secret: ""}},
			headers: map[string]string{"X-Gitlab-Token": ""},
		},
		{
			name:    "signature of empty secret",
			clients: []model.WebhookClient{{Name: "a-github", Type: model.WebhookGitHub, Secret: ""}},
			headers: map[string]string{"X-Hub-Signature-256": signSHA256("", body)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newWebhookHarness(t, fakeWebhookClients{"argo": tt.clients})
			var queued *model.Event
			if tt.wantSubject != "" {
				queued = h.expectEnqueue()
			}

			rec := h.serve(t, newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), tt.headers))

			if tt.wantSubject == "" {
				assert.Equal(t, http.StatusUnauthorized, rec.Code, "body: %s", rec.Body)
				return
			}
			require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
			assert.Equal(t, tt.wantSubject, queued.Caller.Subject)
		})
	}
}

// webhookAuthorizer records the callers it checks and allows none.
type webhookAuthorizer struct{ callers []model.Identity }

func (a *webhookAuthorizer) MayCreateWorkflows(_ context.Context, caller model.Identity, _ string) (bool, error) {
	a.callers = append(a.callers, caller)
	return false, nil
}

// TestWebhookAuthorized checks that a verified client is still authorized,
// as its ServiceAccount, before anything is queued.
func TestWebhookAuthorized(t *testing.T) {
	for _, p := range webhookProviders {
		t.Run(string(p.typ), func(t *testing.T) {
			body := readWebhookPayload(t, p.payload)
			authorizer := &webhookAuthorizer{}
			h, _ := newWebhookHarness(t, argoWebhookClients(), func(cfg *server.Config) { cfg.Authorizer = authorizer })
			reader := &countingReader{r: bytes.NewReader(body)}
			req := newWebhookRequest(t, "/api/v1/events/argo", reader, p.headers)
			req.Header.Set(p.header, p.proof(p.secret, body))

			rec := h.serve(t, req)

			assert.Equal(t, http.StatusForbidden, rec.Code)
			errBody := decodeError(t, rec)
			assert.Equal(t, model.CodePermissionDenied, errBody.Code)
			assert.Contains(t, errBody.Message, "system:serviceaccount:argo:"+p.serviceAccount())
			assert.Equal(t, []model.Identity{model.ServiceAccountIdentity("argo", p.serviceAccount())}, authorizer.callers)
			assert.Equal(t, p.signsBody(), reader.n > 0, "body read only to check a signature over it")
		})
	}
}

// TestWebhookAuthorizationHeaderWins checks that a request with an
// Authorization header is authenticated by it alone, whatever signature it
// also carries.
func TestWebhookAuthorizationHeaderWins(t *testing.T) {
	body := []byte(`{}`)
	h, _ := newWebhookHarness(t, argoWebhookClients())
	h.expectCaller(clusterCaller)
	queued := h.expectEnqueue()
	req := newEventRequest(t, http.MethodPost, "/api/v1/events/argo", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", signSHA256("github-webhook-secret", body))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, clusterCaller.Subject, queued.Caller.Subject)
}
