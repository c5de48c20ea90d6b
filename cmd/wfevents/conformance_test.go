package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/conformance"
)

// summaryLine is the last line of a conformance run.
var summaryLine = regexp.MustCompile(`^\d+ passed, \d+ failed, \d+ skipped$`)

// resultLine is one check's line.
var resultLine = regexp.MustCompile(`^(PASS|FAIL|SKIP|XFAIL|XPASS) [a-z]+\.[a-z0-9-]+(: .+)?$`)

// runCommand runs the wfevents command line with args and returns its
// error and outputs.
func runCommand(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// assertResultLines checks the format of a run's output: one line per
// check, then the summary.
func assertResultLines(t testing.TB, stdout string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Len(t, lines, len(conformance.Checks())+1, "one line per check and the summary")
	for _, line := range lines[:len(lines)-1] {
		assert.Regexp(t, resultLine, line)
	}
	assert.Regexp(t, summaryLine, lines[len(lines)-1])
}

func TestConformanceCommandPasses(t *testing.T) {
	_, srv := startApp(t)

	stdout, stderr, err := runCommand(t, "conformance", "--url", srv.URL, "--token", "admin-token",
		"--scoped-token", "github-token", "--scoped-namespace", "argo")

	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assertResultLines(t, stdout)
	assert.NotContains(t, stdout, "FAIL ")
	assert.Contains(t, stdout, "PASS body.invalid-json\n")
	assert.Contains(t, stdout, "SKIP pipeline.bounded: ")
}

func TestConformanceCommandFails(t *testing.T) {
	a, _ := startApp(t)
	// A server that takes the unknown tokens the suite makes up.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer conformance-unknown-") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"eventId":"accepted"}`))
			return
		}
		a.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(broken.Close)

	stdout, _, err := runCommand(t, "conformance", "--url", broken.URL, "--token", "admin-token", "--run", `^auth\.`)

	require.ErrorIs(t, err, errCheckFailed, "the exit status is 1")
	assert.Contains(t, stdout, "PASS auth.missing-token\n")
	assert.Contains(t, stdout, "\nFAIL auth.unknown-token: sent POST /api/v1/events/argo/conformance-quiet {}, "+
		`got 200 {"eventId":"accepted"}, want 401 with code 16`+"\n")
	assert.Regexp(t, `(?m)^SKIP auth\.scoped-own-namespace: needs a namespace-scoped token`, stdout)
	assert.NotContains(t, stdout, "routes.", "--run selects the auth checks only")
	assert.True(t, strings.HasSuffix(stdout, "2 passed, 1 failed, 3 skipped\n"), "summary of:\n%s", stdout)
}

func TestConformanceCommandUsage(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "no URL", args: []string{"--token", "t"}, wantStderr: "missing --url or --token"},
		{name: "no token", args: []string{"--url", "http://127.0.0.1:1"}, wantStderr: "missing --url or --token"},
		{name: "argument", args: []string{"--url", "http://127.0.0.1:1", "--token", "t", "extra"}, wantStderr: `unexpected argument "extra"`},
		{name: "invalid run", args: []string{"--url", "http://127.0.0.1:1", "--token", "t", "--run", "("}, wantStderr: "invalid --run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runCommand(t, append([]string{"conformance"}, tc.args...)...)
			require.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr, tc.wantStderr)
		})
	}
}

func TestConformanceCommandUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()

	_, _, err := runCommand(t, "conformance", "--url", srv.URL, "--token", "t")

	require.Error(t, err)
	assert.NotErrorIs(t, err, errCheckFailed, "an unreachable server is exit status 2, not a failed check")
	assert.Contains(t, err.Error(), "check the URL")
}

func TestConformanceCommandListsMarkdown(t *testing.T) {
	stdout, _, err := runCommand(t, "conformance", "--list-markdown")

	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Len(t, lines, len(conformance.Checks())+2)
	assert.Equal(t, "| Check | Contract | Needs | Argo's server |", lines[0])
	assert.Contains(t, stdout, "| `body.invalid-json` | ")
}

func TestConformanceOnCluster(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	scopedToken, _ := c.sender(t, namespace)
	a, url := c.startApp(t, app.Config{})
	cluster := conformance.NewKubernetes(c.dynamic)

	var output bytes.Buffer
	start := time.Now()
	report, err := conformance.Run(t.Context(), conformance.Target{
		URL:              url,
		Token:            c.AdminToken,
		Namespace:        namespace,
		ScopedToken:      scopedToken,
		ScopedNamespace:  namespace,
		InstallTemplates: cluster.InstallTemplates,
		ListWorkflows:    cluster.ListWorkflows,
	}, conformance.Options{Output: &output})
	t.Logf("suite output after %s:\n%s", time.Since(start).Round(time.Millisecond), output.String())
	require.NoError(t, err)
	waitForIdle(t, a)

	var failed, skipped []string
	for _, result := range report.Results {
		switch result.Status {
		case conformance.Fail:
			failed = append(failed, result.ID)
		case conformance.Skip:
			skipped = append(skipped, result.ID)
		}
	}
	assert.Empty(t, failed, "failed checks on a real API server")
	slices.Sort(skipped)
	assert.Equal(t, []string{"pipeline.bounded", "pipeline.processed-once"}, skipped,
		"only the checks that need blocked workers are skipped")
}
