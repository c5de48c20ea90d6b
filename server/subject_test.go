package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
)

// withSubjects returns req with a hook that appends every subject the
// server reports to the returned slice.
func withSubjects(req *http.Request) (*http.Request, *[]string) {
	var subjects []string
	ctx := server.WithAuthenticatedHook(req.Context(), func(subject string) {
		subjects = append(subjects, subject)
	})
	return req.WithContext(ctx), &subjects
}

func TestAuthenticatedHookBearerToken(t *testing.T) {
	h := newHarness(t)
	h.expectCaller(clusterCaller)
	h.expectEnqueue()
	req, subjects := withSubjects(newEventRequest(t, http.MethodPost, "/api/v1/events/argo", bytes.NewReader([]byte(`{}`))))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, []string{"admin"}, *subjects)
}

func TestAuthenticatedHookForbiddenCaller(t *testing.T) {
	h := newHarness(t)
	h.expectCaller(argoCaller)
	req, subjects := withSubjects(newEventRequest(t, http.MethodPost, "/api/v1/events/other", bytes.NewReader([]byte(`{}`))))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusForbidden, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, []string{argoCaller.Subject}, *subjects, "an authenticated caller is reported even when it is not authorized")
}

func TestAuthenticatedHookUnknownToken(t *testing.T) {
	h := newHarness(t)
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).
		Return(model.Identity{}, model.Errorf(model.CodeUnauthenticated, "unknown token")).Once()
	req, subjects := withSubjects(newEventRequest(t, http.MethodPost, "/api/v1/events/argo", bytes.NewReader([]byte(`{}`))))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusUnauthorized, rec.Code, "body: %s", rec.Body)
	assert.Empty(t, *subjects)
}

func TestAuthenticatedHookListWorkflows(t *testing.T) {
	h := newHarness(t)
	h.expectCaller(clusterCaller)
	h.workflows.EXPECT().ListWorkflowObjects(mock.Anything, "argo").Return(nil, nil).Once()
	req, subjects := withSubjects(newEventRequest(t, http.MethodGet, "/api/v1/workflows/argo", nil))

	rec := h.serve(t, req)

	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	assert.Equal(t, []string{"admin"}, *subjects)
}

func TestAuthenticatedHookWebhook(t *testing.T) {
	github := webhookProviders[0]
	require.Equal(t, model.WebhookGitHub, github.typ)
	body := readWebhookPayload(t, github.payload)

	cases := []struct {
		name         string
		signature    string
		wantStatus   int
		wantSubjects []string
	}{
		{name: "verified", signature: signSHA256(github.secret, body), wantStatus: http.StatusOK, wantSubjects: []string{"system:serviceaccount:argo:github"}},
		{name: "wrong secret", signature: signSHA256("other-secret", body), wantStatus: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newWebhookHarness(t, argoWebhookClients())
			if tc.wantStatus == http.StatusOK {
				h.expectEnqueue()
			}
			req := newWebhookRequest(t, "/api/v1/events/argo", bytes.NewReader(body), github.headers)
			req.Header.Set(github.header, tc.signature)
			req, subjects := withSubjects(req)

			rec := h.serve(t, req)

			require.Equal(t, tc.wantStatus, rec.Code, "body: %s", rec.Body)
			assert.Equal(t, tc.wantSubjects, *subjects)
		})
	}
}
