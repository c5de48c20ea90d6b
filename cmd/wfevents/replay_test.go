package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testStream is two bearer-token events for the reference template: one
// that matches and one with an empty message, which does not.
const testStream = `{"time":"2026-12-04T10:00:00Z","method":"POST","path":"/api/v1/events/argo","headers":{"Authorization":["REDACTED"],"X-Argo-E2e":["true"]},"body":{"message":"hello events"},"subject":"admin"}
{"time":"2026-12-04T10:00:01Z","method":"POST","path":"/api/v1/events/argo","headers":{"Authorization":["REDACTED"],"X-Argo-E2e":["true"]},"body":{"message":""},"subject":"admin","expect":{"status":200,"resources":[]}}
`

func writeTestStream(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stream.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestReplayUpdateThenExpect(t *testing.T) {
	stream := writeTestStream(t, testStream)
	expected := filepath.Join(t.TempDir(), "expected.json")

	_, stderr, err := runCommand(t, "replay", "--update", "--expect", expected, stream)
	require.NoError(t, err, stderr)
	written, err := os.ReadFile(expected)
	require.NoError(t, err)
	assert.Contains(t, string(written), `"value": "hello events"`)

	stdout, stderr, err := runCommand(t, "replay", "--expect", expected, stream)
	require.NoError(t, err, stderr)
	assert.Contains(t, stdout, `message="hello events"`)
	assert.Empty(t, stderr)
}

func TestReplayExpectReportsDifference(t *testing.T) {
	stream := writeTestStream(t, testStream)
	expected := filepath.Join(t.TempDir(), "expected.json")
	_, stderr, err := runCommand(t, "replay", "--update", "--expect", expected, stream)
	require.NoError(t, err, stderr)
	written, err := os.ReadFile(expected)
	require.NoError(t, err)
	changed := strings.Replace(string(written), `"value": "hello events"`, `"value": "goodbye"`, 1)
	require.NoError(t, os.WriteFile(expected, []byte(changed), 0o644))

	_, stderr, err = runCommand(t, "replay", "--expect", expected, stream)

	require.ErrorIs(t, err, errReplayDiffers)
	assert.Contains(t, stderr, "line 1 (POST /api/v1/events/argo) differs (-expected +replayed)")
	assert.Contains(t, stderr, `"goodbye"`)
	assert.Contains(t, stderr, `"hello events"`)
	assert.Contains(t, stderr, "run the same command with --update added")
}

func TestReplayInlineExpectationFails(t *testing.T) {
	stream := writeTestStream(t, strings.Replace(testStream, `"expect":{"status":200,"resources":[]}`, `"expect":{"status":200,"resources":["WorkflowTemplate/argo/event-consumer"]}`, 1))

	_, stderr, err := runCommand(t, "replay", stream)

	require.ErrorIs(t, err, errReplayDiffers)
	assert.Contains(t, stderr, "line 2: Workflows from [], expected from [WorkflowTemplate/argo/event-consumer]")
}

func TestReplayFlagErrors(t *testing.T) {
	stream := writeTestStream(t, testStream)
	cases := map[string]struct {
		args []string
		want string
	}{
		"no stream":      {args: nil, want: "expected one STREAM argument, got 0"},
		"bad output":     {args: []string{"--output", "yaml", stream}, want: `invalid --output "yaml": use table or json`},
		"update alone":   {args: []string{"--update", stream}, want: "--update needs --expect FILE"},
		"missing stream": {args: []string{filepath.Join(t.TempDir(), "none.jsonl")}, want: "open stream:"},
		"bad line":       {args: []string{writeTestStream(t, "{}\n")}, want: `line 1: missing "method"`},
		"missing expect": {args: []string{"--expect", filepath.Join(t.TempDir(), "none.json"), stream}, want: "create it with --update"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := runCommand(t, append([]string{"replay"}, tc.args...)...)
			require.Error(t, err)
			message := stderr
			if err != errUsage {
				message += err.Error()
			}
			assert.Contains(t, message, tc.want)
		})
	}
}

func TestReplayFlagsAfterStream(t *testing.T) {
	stream := writeTestStream(t, testStream)

	stdout, stderr, err := runCommand(t, "replay", stream, "--output", "json")

	require.NoError(t, err, stderr)
	assert.Contains(t, stdout, `"eventId": "replay-1"`)
}

func TestReplayUpdateStillChecksLines(t *testing.T) {
	stream := writeTestStream(t, strings.Replace(testStream, `"expect":{"status":200,"resources":[]}`, `"expect":{"status":201}`, 1))
	expected := filepath.Join(t.TempDir(), "expected.json")

	_, stderr, err := runCommand(t, "replay", "--update", "--expect", expected, stream)

	require.ErrorIs(t, err, errReplayDiffers)
	assert.Contains(t, stderr, "line 2: status 200, expected 201")
	assert.FileExists(t, expected, "the result is written even so")
}

func TestReplayRaisedBodyLimit(t *testing.T) {
	message := strings.Repeat("x", 3<<20)
	line := `{"time":"2026-12-04T10:00:00Z","method":"POST","path":"/api/v1/events/argo","headers":{"Authorization":["REDACTED"],"X-Argo-E2e":["true"]},"body":{"message":"` + message + `"},"subject":"admin"}` + "\n"
	stream := writeTestStream(t, line)

	stdout, stderr, err := runCommand(t, "replay", stream)
	require.NoError(t, err, stderr)
	assert.Regexp(t, `\n1\s+413\s`, stdout, "the default limit is 2 MiB")

	stdout, stderr, err = runCommand(t, "replay", "--max-body-bytes", "4194304", stream)
	require.NoError(t, err, stderr)
	assert.Regexp(t, `\n1\s+200\s`, stdout)
}

func TestReplayEmptyStream(t *testing.T) {
	stream := writeTestStream(t, "\n")

	_, _, err := runCommand(t, "replay", stream)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no requests: record some with wfevents serve --record FILE")
}
