package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gitHubPushArgs are the flags that evaluate the GitHub push delivery of the
// fixtures as the server would receive it from GitHub.
var gitHubPushArgs = []string{
	"--event", "../../fixtures/webhooks/github/push.json",
	"--header", "X-GitHub-Event=push",
	"--subject", "system:serviceaccount:argo:github",
}

// runCheckCommand runs "wfevents check" with args, feeding stdin to
// --event -, and returns its stdout, its stderr and its error.
func runCheckCommand(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()

	var out, errOut bytes.Buffer
	err = check(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	t.Logf("wfevents check %s\nstderr:\n%s", strings.Join(args, " "), errOut.String())
	return out.String(), errOut.String(), err
}

// assertCheckGolden compares got with testdata/check/golden/name. With
// -update it rewrites the file instead.
func assertCheckGolden(t testing.TB, name, got string) {
	t.Helper()

	path := filepath.Join("testdata", "check", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/wfevents -run TestCheck -update to create the golden file")
	assert.Equal(t, string(want), got, "output differs from %s", path)
}

// writeFiles writes files, keyed by name, into a new directory and returns
// the directory.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()

	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func TestCheckReportsBrokenExpressions(t *testing.T) {
	stdout, stderr, err := runCheckCommand(t, "", "testdata/check/broken")

	require.ErrorIs(t, err, errCheckFailed)
	assert.Empty(t, stdout)
	assertCheckGolden(t, "broken.txt", stderr)
}

// TestCheckReportsLines pins the line of each problem in the broken
// directory, one case per kind of field, independently of the golden file.
func TestCheckReportsLines(t *testing.T) {
	_, stderr, err := runCheckCommand(t, "", "testdata/check/broken")
	require.ErrorIs(t, err, errCheckFailed)
	lines := strings.Split(stderr, "\n")

	cases := []struct {
		name       string
		wantPrefix string
	}{
		{name: "template event expression in second document", wantPrefix: "testdata/check/broken/templates.yaml:20: WorkflowTemplate/argo/broken-event: spec.event.expression: unexpected token EOF (column 16)"},
		{name: "template parameter expression", wantPrefix: "testdata/check/broken/template-parameter.yaml:16: WorkflowTemplate/argo/broken-parameters: spec.arguments.parameters[1].valueFrom.expression: "},
		{name: "second broken parameter of same template", wantPrefix: "testdata/check/broken/template-parameter.yaml:21: WorkflowTemplate/argo/broken-parameters: spec.arguments.parameters[3].valueFrom.expression: literal not terminated"},
		{name: "cluster template expression", wantPrefix: "testdata/check/broken/cluster-template.yaml:9: ClusterWorkflowTemplate/broken-cluster: spec.event.expression: "},
		{name: "binding selector", wantPrefix: "testdata/check/broken/bindings.yaml:8: WorkflowEventBinding/argo/broken-selector: spec.event.selector: "},
		{name: "binding parameter", wantPrefix: "testdata/check/broken/bindings.yaml:28: WorkflowEventBinding/argo/broken-parameter: spec.submit.arguments.parameters[0].valueFrom.event: "},
		{name: "binding metadata name", wantPrefix: "testdata/check/broken/bindings.yaml:42: WorkflowEventBinding/argo/broken-metadata: spec.submit.metadata.name: "},
		{name: "binding label with dotted key", wantPrefix: `testdata/check/broken/bindings.yaml:45: WorkflowEventBinding/argo/broken-metadata: spec.submit.metadata.labels["example.com/ref"]: `},
		{name: "binding annotation", wantPrefix: `testdata/check/broken/bindings.yaml:47: WorkflowEventBinding/argo/broken-metadata: spec.submit.metadata.annotations["example.com/sender"]: `},
		{name: "binding without template", wantPrefix: "testdata/check/broken/bindings.yaml:58: WorkflowEventBinding/argo/no-template: spec.submit.workflowTemplateRef.name is missing"},
		{name: "third line of literal block", wantPrefix: "testdata/check/broken/multiline.yaml:11: WorkflowTemplate/argo/broken-multiline: spec.event.expression: "},
		{name: "invalid YAML", wantPrefix: "testdata/check/broken/invalid.yaml:5: invalid YAML: "},
		{name: "missing name", wantPrefix: "testdata/check/broken/unnamed.yaml:4: WorkflowTemplate/argo/: metadata.name: missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			found := false
			for _, line := range lines {
				found = found || strings.HasPrefix(line, tc.wantPrefix)
			}
			assert.True(t, found, "no line starts with %q", tc.wantPrefix)
		})
	}

	assert.NotContains(t, stderr, "valid:", "the valid template is not reported")
	assert.NotContains(t, stderr, "Secret", "other kinds are ignored")
	assert.NotContains(t, stderr, "webhook-body.json", "JSON that is not a resource is ignored")
	assert.NotContains(t, stderr, "notes.txt", "only YAML and JSON files are read from a directory")
	assert.Equal(t, "checked 10 resources in 8 files: 13 errors", lines[len(lines)-2])
}

func TestCheckFixturesPass(t *testing.T) {
	stdout, stderr, err := runCheckCommand(t, "", "../../fixtures")

	require.NoError(t, err)
	assert.Empty(t, stdout)
	assert.Equal(t, "checked 8 resources in 24 files: 0 errors\n", stderr)
}

func TestCheckEventGitHubPush(t *testing.T) {
	stdout, stderr, err := runCheckCommand(t, "", append([]string{"../../fixtures"}, gitHubPushArgs...)...)

	require.NoError(t, err)
	assertCheckGolden(t, "github-push.yaml", stdout)
	assert.Equal(t, "checked 8 resources in 24 files: 0 errors; the event matched 1 resource and would create 1 Workflow\n", stderr)
}

// TestCheckEventFailures evaluates bindings, a cluster template and resources
// that fail for the event, with the flags after the paths.
func TestCheckEventFailures(t *testing.T) {
	args := append([]string{"../../fixtures", "testdata/check/event"}, gitHubPushArgs...)
	stdout, stderr, err := runCheckCommand(t, "", args...)

	require.ErrorIs(t, err, errCheckFailed)
	assertCheckGolden(t, "event-workflows.yaml", stdout)
	assertCheckGolden(t, "event-errors.txt", stderr)
}

func TestCheckEventFromStdin(t *testing.T) {
	stdout, stderr, err := runCheckCommand(t, `{"message": "hello events"}`,
		"--event", "-", "--header", "X-Argo-E2E=true", "../../fixtures/cluster/event-consumer.yaml")

	require.NoError(t, err)
	assert.Regexp(t, `\n  name: event-consumer-[a-z2-7]{10}\n`, stdout)
	assert.Contains(t, stdout, "- name: message\n      value: hello events\n")
	assert.Contains(t, stderr, "the event matched 1 resource and would create 1 Workflow")
}

func TestCheckEventMatchesNothing(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{name: "other subject", args: []string{"--subject", "someone"}},
		{name: "other namespace", args: []string{"--namespace", "other"}},
		{name: "other instance", args: []string{"--instance-id", "other"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--event", "-", "--header", "X-Argo-E2E=true", "../../fixtures/cluster"}, tc.args...)
			stdout, stderr, err := runCheckCommand(t, `{"message": "hello"}`, args...)

			require.NoError(t, err)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "the event matched 0 resources and would create 0 Workflows")
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantErr    string // in the returned error, or empty for a usage error
		wantStderr string
	}{
		{name: "no path", args: nil, wantStderr: "no file or directory to check"},
		{name: "missing path", args: []string{"no-such-dir"}, wantErr: "no-such-dir"},
		{name: "missing event file", args: []string{"--event", "no-such-event.json", "../../fixtures"}, wantErr: "no-such-event.json"},
		{name: "event not JSON", args: []string{"--event", "testdata/check/broken/notes.txt", "../../fixtures"}, wantErr: "read --event testdata/check/broken/notes.txt: invalid JSON"},
		{name: "header without value", args: []string{"--event", "-", "--header", "X-GitHub-Event", "../../fixtures"}, wantStderr: `invalid value "X-GitHub-Event" for flag -header: want NAME=VALUE`},
		{name: "header without name", args: []string{"--event", "-", "--header", "=push", "../../fixtures"}, wantStderr: `invalid value "=push" for flag -header`},
		{name: "event flag without event", args: []string{"--subject", "admin", "../../fixtures"}, wantStderr: "--subject describes the event and needs --event"},
		{name: "unknown flag", args: []string{"--no-such-flag", "../../fixtures"}, wantStderr: "flag provided but not defined: -no-such-flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCheckCommand(t, "{}", tc.args...)

			require.Error(t, err)
			assert.NotErrorIs(t, err, errCheckFailed)
			assert.Empty(t, stdout)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
			} else {
				assert.ErrorIs(t, err, errUsage)
			}
			assert.Contains(t, stderr, tc.wantStderr)
		})
	}
}

func TestCheckHelp(t *testing.T) {
	_, stderr, err := runCheckCommand(t, "", "-h")

	require.NoError(t, err)
	assert.Contains(t, stderr, "Usage: wfevents check [flags] PATH...")
	assert.Contains(t, stderr, "FILE:LINE: KIND/NAMESPACE/NAME: FIELD: MESSAGE (column C)")
}

func TestCheckThroughRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"check", "testdata/check/broken/templates.yaml"}, &stdout, &stderr)

	require.ErrorIs(t, err, errCheckFailed)
	assert.Contains(t, stderr.String(), "templates.yaml:20: WorkflowTemplate/argo/broken-event:")
}

func TestCheckWarnsAboutDuplicates(t *testing.T) {
	template := "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: twice\n  namespace: argo\nspec:\n  event:\n    expression: \"true\"\n"
	dir := writeFiles(t, map[string]string{"a.yaml": template, "b.yaml": "# a copy\n" + template})

	_, stderr, err := runCheckCommand(t, "", dir)

	require.NoError(t, err, "a duplicate is a warning, not an error")
	assert.Contains(t, stderr, filepath.Join(dir, "b.yaml")+":1: WorkflowTemplate/argo/twice: warning: also defined at "+filepath.Join(dir, "a.yaml")+":1")
}

func TestCheckInvalidSeparator(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": "kind: ConfigMap\n--- kind: WorkflowTemplate\n"})

	_, stderr, err := runCheckCommand(t, "", filepath.Join(dir, "a.yaml"))

	require.ErrorIs(t, err, errCheckFailed)
	assert.Contains(t, stderr, `a.yaml:2: invalid YAML: document separator "--- kind: WorkflowTemplate" has content after ---`)
}

func TestCheckSplitDocuments(t *testing.T) {
	data := "# comment only\n---\na: 1\n--- # comment\n---\nb: 2\nc: 3\n---\n"

	documents, err := splitDocuments([]byte(data))

	require.NoError(t, err)
	require.Len(t, documents, 3)
	assert.Equal(t, yamlDocument{data: []byte("# comment only\n"), line: 1}, documents[0])
	assert.Equal(t, yamlDocument{data: []byte("a: 1\n"), line: 3}, documents[1])
	assert.Equal(t, yamlDocument{data: []byte("b: 2\nc: 3\n"), line: 6}, documents[2])
}

func TestCheckParseFieldPath(t *testing.T) {
	cases := []struct {
		field string
		want  []pathStep
	}{
		{field: "spec.event.expression", want: []pathStep{{key: "spec"}, {key: "event"}, {key: "expression"}}},
		{field: "spec.arguments.parameters[12].valueFrom", want: []pathStep{{key: "spec"}, {key: "arguments"}, {key: "parameters"}, {index: 12}, {key: "valueFrom"}}},
		{field: `metadata.labels["a.b/c"]`, want: []pathStep{{key: "metadata"}, {key: "labels"}, {key: "a.b/c"}}},
		{field: `labels["quote\"d"].x`, want: []pathStep{{key: "labels"}, {key: `quote"d`}, {key: "x"}}},
		{field: "list[x].y", want: []pathStep{{key: "list"}}},
		{field: "list[3", want: []pathStep{{key: "list"}}},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			assert.Equal(t, tc.want, parseFieldPath(tc.field))
		})
	}
}
