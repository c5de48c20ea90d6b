package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/conformance"
	"github.com/wfevents/wfevents/fixtures"
)

var update = flag.Bool("update", false, "rewrite testdata/fixtures/cluster/conformance.yaml")

// pipelineSize and workerCount keep the pipeline checks short: they send
// pipelineSize + 1 events.
const (
	pipelineSize = 8
	workerCount  = 2
)

// idleWait bounds the wait for the pipeline to empty before the workers
// are blocked.
const idleWait = 10 * time.Second

// embedded is wfevents in embedded mode behind an httptest server.
type embedded struct {
	app  *app.App
	url  string
	gate *workerGate
}

// startEmbedded runs the embedded app on seed behind an httptest server,
// with the handler wrapped by wrap when it is not nil.
func startEmbedded(t testing.TB, seed *fixtures.Set, wrap func(http.Handler) http.Handler) *embedded {
	t.Helper()

	a, err := app.NewEmbedded(app.Config{
		PipelineSize: pipelineSize,
		WorkerCount:  workerCount,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	}, seed)
	require.NoError(t, err)

	// The reactor goes in before the app starts, because the fake's
	// reaction chain may not change while the workers use it.
	gate := &workerGate{}
	a.Fake.PrependReactor("create", "workflows", gate.react)
	t.Cleanup(gate.open)

	syncCtx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.True(t, a.Start(syncCtx), "template caches did not sync")
	t.Cleanup(a.Stop)

	handler := a.Handler
	if wrap != nil {
		handler = wrap(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &embedded{app: a, url: srv.URL, gate: gate}
}

// target returns a Target for the server with every hook the in-process
// server can offer: installing templates and listing Workflows through the
// fake cluster, and blocking the workers.
func (e *embedded) target() conformance.Target {
	cluster := conformance.NewKubernetes(e.app.Fake)
	return conformance.Target{
		URL:              e.url,
		Token:            "admin-token",
		ScopedToken:      "github-token",
		ScopedNamespace:  "argo",
		InstallTemplates: cluster.InstallTemplates,
		ListWorkflows:    cluster.ListWorkflows,
		BlockWorkers:     e.blockWorkers,
		PipelineSize:     pipelineSize,
	}
}

// blockWorkers waits until the pipeline is empty, then makes every
// Workflow create wait until release is called.
func (e *embedded) blockWorkers(ctx context.Context) (func(), error) {
	deadline := time.Now().Add(idleWait)
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	for e.app.Pipeline.Depth() > 0 {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pipeline still holds %d events after %s", e.app.Pipeline.Depth(), idleWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
	e.gate.close()
	return e.gate.open, nil
}

// workerGate holds Workflow creates in the fake cluster while it is closed.
// client-go's fake runs reactors in the calling goroutine, so a held create
// holds the worker that makes it.
type workerGate struct {
	mu      sync.Mutex
	blocked chan struct{} // nil while open
}

func (g *workerGate) react(k8stesting.Action) (bool, runtime.Object, error) {
	g.mu.Lock()
	blocked := g.blocked
	g.mu.Unlock()
	if blocked != nil {
		<-blocked
	}
	return false, nil, nil // the next reactors create the Workflow
}

func (g *workerGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = make(chan struct{})
	}
}

func (g *workerGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked != nil {
		close(g.blocked)
		g.blocked = nil
	}
}

func builtInFixtures(t testing.TB) *fixtures.Set {
	t.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	return seed
}

// runSuite runs the suite against target, logs its output, and returns
// the statuses by check ID.
func runSuite(t testing.TB, target conformance.Target) (map[string]conformance.Status, conformance.Report) {
	t.Helper()
	var output bytes.Buffer
	start := time.Now()
	report, err := conformance.Run(t.Context(), target, conformance.Options{Output: &output})
	t.Logf("suite output after %s:\n%s", time.Since(start).Round(time.Millisecond), output.String())
	require.NoError(t, err)

	statuses := make(map[string]conformance.Status, len(report.Results))
	for _, result := range report.Results {
		statuses[result.ID] = result.Status
	}
	require.Len(t, statuses, len(conformance.Checks()), "one result per check")
	return statuses, report
}

// withStatus returns the IDs whose status is status, sorted.
func withStatus(statuses map[string]conformance.Status, status conformance.Status) []string {
	var ids []string
	for id, got := range statuses {
		if got == status {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func TestSuitePassesInProcess(t *testing.T) {
	t.Parallel()
	server := startEmbedded(t, builtInFixtures(t), nil)

	statuses, report := runSuite(t, server.target())

	assert.Empty(t, withStatus(statuses, conformance.Fail), "failed checks")
	assert.Empty(t, withStatus(statuses, conformance.Skip), "skipped checks, though the target offers every hook")
	assert.False(t, report.Failed())
	assert.Equal(t, fmt.Sprintf("%d passed, 0 failed, 0 skipped", len(conformance.Checks())), report.Summary())
}

func TestSuiteRemovesItsTemplates(t *testing.T) {
	t.Parallel()
	server := startEmbedded(t, builtInFixtures(t), nil)

	_, report := runSuite(t, server.target())
	require.False(t, report.Failed())

	cluster := conformance.NewKubernetes(server.app.Fake)
	workflows, err := cluster.ListWorkflows(t.Context(), "argo")
	require.NoError(t, err)
	for _, wf := range workflows {
		// The reference event also fires the fixtures' event-consumer,
		// whose Workflows are not the suite's to delete.
		assert.False(t, strings.HasPrefix(wf.GetName(), "conformance-") || strings.HasPrefix(wf.GetGenerateName(), "conformance-"),
			"Workflow %s of a suite template left behind", wf.GetName())
	}
	assert.Eventually(t, func() bool {
		for _, ref := range server.app.Catalog.InScope("argo", func(string) bool { return true }) {
			if strings.HasPrefix(ref.Meta().Ref.Name, "conformance-") {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "suite templates still loaded after the run")
}

func TestSuiteOverHTTPOnly(t *testing.T) {
	t.Parallel()
	seed, err := fixtures.Load(os.DirFS(filepath.Join("testdata", "fixtures")))
	require.NoError(t, err)
	server := startEmbedded(t, seed, nil)

	// Only what the CLI has without --kubeconfig: the URL and the tokens.
	statuses, _ := runSuite(t, conformance.Target{
		URL:             server.url,
		Token:           "admin-token",
		ScopedToken:     "github-token",
		ScopedNamespace: "argo",
	})

	assert.Empty(t, withStatus(statuses, conformance.Fail), "failed checks")
	assert.Equal(t, []string{"pipeline.bounded", "pipeline.processed-once"}, withStatus(statuses, conformance.Skip),
		"only the checks that need blocked workers are skipped")
}

func TestSuiteSkipsWithoutTemplates(t *testing.T) {
	t.Parallel()
	server := startEmbedded(t, builtInFixtures(t), nil)

	statuses, report := runSuite(t, conformance.Target{URL: server.url, Token: "admin-token"})

	assert.Empty(t, withStatus(statuses, conformance.Fail), "failed checks")
	for _, result := range report.Results {
		if result.Status == conformance.Skip {
			assert.NotEmpty(t, result.Detail, "skip of %s without a reason", result.ID)
		}
	}
	assert.Contains(t, withStatus(statuses, conformance.Skip), "env.event-and-payload")
	assert.Contains(t, withStatus(statuses, conformance.Skip), "auth.scoped-other-namespace")
	assert.Contains(t, withStatus(statuses, conformance.Pass), "body.invalid-json")
}

func TestSuiteArgoProfile(t *testing.T) {
	t.Parallel()
	server := startEmbedded(t, builtInFixtures(t), nil)
	target := server.target()
	target.Profile = conformance.ProfileArgo

	statuses, report := runSuite(t, target)

	var wantXPass, wantSkip []string
	for _, check := range conformance.Checks() {
		switch {
		case check.Beyond:
			wantSkip = append(wantSkip, check.ID)
		case check.ArgoDiffers != "":
			wantXPass = append(wantXPass, check.ID)
		}
	}
	slices.Sort(wantXPass)
	slices.Sort(wantSkip)
	assert.Empty(t, withStatus(statuses, conformance.Fail), "failed checks, without a dry run")
	assert.Equal(t, wantXPass, withStatus(statuses, conformance.XPass), "checks where Argo differs pass on wfevents")
	assert.Equal(t, wantSkip, withStatus(statuses, conformance.Skip), "checks of what only wfevents offers")
	assert.Contains(t, report.Summary(), "0 expected failures, "+fmt.Sprint(len(wantXPass))+" unexpected passes")
}

func TestSuiteFailsOnBrokenServer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		wrap       func(http.Handler) http.Handler
		wantFailed []string
	}{
		{name: "invalid JSON accepted", wrap: acceptInvalidJSON, wantFailed: []string{"body.invalid-json"}},
		{name: "x-gitlab-token shown", wrap: showGitlabToken, wantFailed: []string{"env.secret-headers-hidden"}},
		{name: "no Retry-After", wrap: dropRetryAfter, wantFailed: []string{"pipeline.bounded"}},
		{name: "no trailing slash route", wrap: rejectTrailingSlash, wantFailed: []string{"routes.namespace-trailing-slash"}},
		{name: "token echoed", wrap: echoToken, wantFailed: []string{"response.no-secret-echo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := startEmbedded(t, builtInFixtures(t), tc.wrap)

			statuses, report := runSuite(t, server.target())

			assert.Equal(t, tc.wantFailed, withStatus(statuses, conformance.Fail), "failed checks")
			assert.Empty(t, withStatus(statuses, conformance.Skip), "skipped checks")
			assert.True(t, report.Failed())
			for _, result := range report.Results {
				if result.Status == conformance.Fail {
					assert.Contains(t, result.Detail, "want ", "failure of %s says what it wanted", result.ID)
				}
			}
		})
	}
}

// acceptInvalidJSON responds with 200 to an event whose body does not start
// with a JSON value, as a server that never parses the body would.
func acceptInvalidJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/events/") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var first any
			if len(bytes.TrimSpace(body)) > 0 && json.NewDecoder(bytes.NewReader(body)).Decode(&first) != nil {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"eventId":"broken"}`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// showGitlabToken adds the X-Gitlab-Token header to the metadata that a dry
// run shows, as a server that kept it in the environment would.
func showGitlabToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := r.Header.Get("X-Gitlab-Token")
		if secret == "" || r.URL.Query().Get("dryRun") != "All" {
			next.ServeHTTP(w, r)
			return
		}
		recorder := httptest.NewRecorder()
		next.ServeHTTP(recorder, r)

		var dryRun map[string]any
		body := recorder.Body.Bytes()
		if json.Unmarshal(body, &dryRun) == nil {
			resources, _ := dryRun["resources"].([]any)
			for _, resource := range resources {
				workflow, _ := resource.(map[string]any)["workflow"].(map[string]any)
				addHeaderToMetadata(workflow, "x-gitlab-token", secret)
			}
			body, _ = json.Marshal(dryRun)
		}
		header := w.Header()
		for name, values := range recorder.Header() {
			header[name] = values
		}
		header.Del("Content-Length")
		w.WriteHeader(recorder.Code)
		_, _ = w.Write(body)
	})
}

// addHeaderToMetadata adds key to the JSON of the parameter metadata of
// workflow, if it has one.
func addHeaderToMetadata(workflow map[string]any, key, value string) {
	if workflow == nil {
		return
	}
	parameters, _, _ := unstructured.NestedSlice(workflow, "spec", "arguments", "parameters")
	for i, raw := range parameters {
		parameter, _ := raw.(map[string]any)
		if parameter["name"] != "metadata" {
			continue
		}
		var metadata map[string]any
		if json.Unmarshal([]byte(parameter["value"].(string)), &metadata) != nil {
			continue
		}
		metadata[key] = []string{value}
		encoded, _ := json.Marshal(metadata)
		parameter["value"] = string(encoded)
		parameters[i] = parameter
	}
	_ = unstructured.SetNestedSlice(workflow, parameters, "spec", "arguments", "parameters")
}

// dropRetryAfter removes Retry-After from every 503.
func dropRetryAfter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&retryAfterDropper{ResponseWriter: w}, r)
	})
}

type retryAfterDropper struct{ http.ResponseWriter }

func (d *retryAfterDropper) WriteHeader(status int) {
	if status == http.StatusServiceUnavailable {
		d.Header().Del("Retry-After")
	}
	d.ResponseWriter.WriteHeader(status)
}

// rejectTrailingSlash responds with 404 to /api/v1/events/argo/, as a server
// with only the original route would.
func rejectTrailingSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/events/argo/" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":5,"message":"no route"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// echoToken responds with 401 and a message that repeats the Authorization
// header, for every token the server does not know.
func echoToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !strings.HasPrefix(token, "conformance-secret-") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		message, _ := json.Marshal(fmt.Sprintf("token %s is not valid", token))
		_, _ = fmt.Fprintf(w, `{"code":16,"message":%s}`, message)
	})
}

func TestChecksTable(t *testing.T) {
	idPattern := regexp.MustCompile(`^[a-z]+\.[a-z0-9]+(-[a-z0-9]+)*$`)
	seen := make(map[string]bool)
	for _, check := range conformance.Checks() {
		assert.Regexp(t, idPattern, check.ID)
		assert.False(t, seen[check.ID], "ID %s repeats", check.ID)
		seen[check.ID] = true
		assert.True(t, strings.HasSuffix(check.Statement, "."), "statement of %s is not a sentence: %q", check.ID, check.Statement)
		assert.False(t, check.Beyond && check.ArgoDiffers != "", "%s is both beyond Argo and a known difference", check.ID)
	}
	assert.Equal(t, "latency.admission", conformance.Checks()[len(seen)-1].ID, "latency runs last, over every response")
}

func TestMarkdownListsEveryCheck(t *testing.T) {
	var table bytes.Buffer
	require.NoError(t, conformance.Markdown(&table))

	lines := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	require.Len(t, lines, len(conformance.Checks())+2, "header, separator and one row per check")
	for i, check := range conformance.Checks() {
		row := lines[i+2]
		assert.True(t, strings.HasPrefix(row, "| `"+check.ID+"` | "), "row %d: %s", i, row)
		assert.Equal(t, 5, strings.Count(row, "|")-strings.Count(row, `\|`), "row %d has four cells: %s", i, row)
	}
}

func TestRunRejectsInvalidTarget(t *testing.T) {
	cases := []struct {
		name   string
		target conformance.Target
		want   string
	}{
		{name: "no URL", target: conformance.Target{Token: "t"}, want: "invalid target URL"},
		{name: "not HTTP", target: conformance.Target{URL: "ftp://example.com", Token: "t"}, want: "invalid target URL"},
		{name: "no token", target: conformance.Target{URL: "http://127.0.0.1:1"}, want: "missing target token"},
		{name: "scoped token alone", target: conformance.Target{URL: "http://127.0.0.1:1", Token: "t", ScopedToken: "s"}, want: "needs its namespace"},
		{name: "unknown profile", target: conformance.Target{URL: "http://127.0.0.1:1", Token: "t", Profile: "other"}, want: "invalid profile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conformance.Run(t.Context(), tc.target, conformance.Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestRunReportsUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()

	_, err := conformance.Run(t.Context(), conformance.Target{URL: url, Token: "t"}, conformance.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "check the URL")
}

func TestFixturesUpToDate(t *testing.T) {
	objects := append(conformance.Resources("argo"), conformance.ReferenceTemplate("argo", "admin"))
	var got bytes.Buffer
	got.WriteString("# The conformance suite's templates for namespace argo, for\n")
	got.WriteString("# wfevents serve --fixtures conformance/testdata/fixtures.\n")
	got.WriteString("# Generated by go test ./conformance -run TestFixturesUpToDate -update.\n")
	for _, obj := range objects {
		data, err := yaml.Marshal(obj.Object)
		require.NoError(t, err)
		got.WriteString("---\n")
		got.Write(data)
	}

	path := filepath.Join("testdata", "fixtures", "cluster", "conformance.yaml")
	if *update {
		require.NoError(t, os.WriteFile(path, got.Bytes(), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./conformance -run TestFixturesUpToDate -update to create it")
	assert.Equal(t, string(want), got.String(), "%s differs from conformance.Resources: run with -update", path)
}
