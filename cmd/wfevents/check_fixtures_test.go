package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckFixtureWebhooks evaluates the fixtures against each provider's
// webhook bodies in fixtures/webhooks, with the event header the provider
// sends, and pins the Workflows they would create.
func TestCheckFixtureWebhooks(t *testing.T) {
	cases := []struct {
		name    string
		event   string
		header  string
		subject string
		// wantGolden names the expected Workflows under
		// testdata/check/golden, or is empty when nothing matches.
		wantGolden string
	}{
		{
			name:       "github pull request opened",
			event:      "github/pull_request-opened.json",
			header:     "X-GitHub-Event=pull_request",
			subject:    "system:serviceaccount:argo:github",
			wantGolden: "fixture-github-pull_request-opened.yaml",
		},
		{
			name:       "github pull request synchronize",
			event:      "github/pull_request-synchronize.json",
			header:     "X-GitHub-Event=pull_request",
			subject:    "system:serviceaccount:argo:github",
			wantGolden: "fixture-github-pull_request-synchronize.yaml",
		},
		{
			name:    "github pull request closed",
			event:   "github/pull_request-closed.json",
			header:  "X-GitHub-Event=pull_request",
			subject: "system:serviceaccount:argo:github",
		},
		{
			name:    "github ping",
			event:   "github/ping.json",
			header:  "X-GitHub-Event=ping",
			subject: "system:serviceaccount:argo:github",
		},
		{
			name:       "gitlab push",
			event:      "gitlab/push.json",
			header:     "X-Gitlab-Event=Push Hook",
			subject:    "system:serviceaccount:argo:gitlab",
			wantGolden: "fixture-gitlab-push.yaml",
		},
		{
			name:    "gitlab merge request",
			event:   "gitlab/merge_request.json",
			header:  "X-Gitlab-Event=Merge Request Hook",
			subject: "system:serviceaccount:argo:gitlab",
		},
		{
			name:       "bitbucket cloud push",
			event:      "bitbucket/repo-push.json",
			header:     "X-Event-Key=repo:push",
			subject:    "system:serviceaccount:argo:bitbucket",
			wantGolden: "fixture-bitbucket-repo-push.yaml",
		},
		{
			name:    "bitbucket cloud pull request created",
			event:   "bitbucket/pullrequest-created.json",
			header:  "X-Event-Key=pullrequest:created",
			subject: "system:serviceaccount:argo:bitbucket",
		},
		{
			name:       "bitbucket server refs changed",
			event:      "bitbucket-server/repo-refs_changed.json",
			header:     "X-Event-Key=repo:refs_changed",
			subject:    "system:serviceaccount:argo:bitbucketserver",
			wantGolden: "fixture-bitbucket-server-repo-refs_changed.yaml",
		},
		{
			name:    "bitbucket server pull request opened",
			event:   "bitbucket-server/pr-opened.json",
			header:  "X-Event-Key=pr:opened",
			subject: "system:serviceaccount:argo:bitbucketserver",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCheckCommand(t, "", "../../fixtures",
				"--event", "../../fixtures/webhooks/"+tc.event, "--header", tc.header, "--subject", tc.subject)

			require.NoError(t, err)
			if tc.wantGolden == "" {
				assert.Empty(t, stdout)
				assert.Contains(t, stderr, "the event matched 0 resources and would create 0 Workflows")
				return
			}
			assert.Contains(t, stderr, "the event matched 1 resource and would create 1 Workflow")
			assertCheckGolden(t, tc.wantGolden, stdout)
		})
	}
}
