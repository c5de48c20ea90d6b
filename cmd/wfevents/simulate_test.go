package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const burstStream = "../../fixtures/streams/burst.jsonl"

func TestSimulateIsDeterministic(t *testing.T) {
	args := []string{"simulate", "--fixtures", "../../fixtures", "--api-latency", "normal:40ms,10ms", "--seed", "7", burstStream}

	first, stderr, err := runCommand(t, args...)
	require.NoError(t, err, stderr)
	second, stderr, err := runCommand(t, args...)
	require.NoError(t, err, stderr)

	assert.Equal(t, first, second)
	assert.Contains(t, first, "API latency normal:40ms,10ms per create")
	assert.Contains(t, first, "requests               500")
}

func TestSimulateJSONCounts(t *testing.T) {
	stdout, stderr, err := runCommand(t, "simulate", "--fixtures", "../../fixtures", "--output", "json",
		"--event-pipeline-size", "32", "--event-worker-count", "2", "--api-latency", "50ms", burstStream)
	require.NoError(t, err, stderr)

	var summary struct {
		Requests, Accepted, Rejected, NotAdmitted, Workflows, MaxDepth int
		Depth                                                          []struct{ MaxDepth int }
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &summary))
	assert.Equal(t, 500, summary.Requests)
	assert.Equal(t, summary.Requests, summary.Accepted+summary.Rejected+summary.NotAdmitted)
	assert.Equal(t, summary.Accepted, summary.Workflows, "every burst event creates one Workflow")
	assert.Positive(t, summary.Rejected, "2 workers at 50ms per create cannot keep up with 250 events/s")
	assert.Equal(t, 32, summary.MaxDepth)
	assert.Len(t, summary.Depth, 20)
}

func TestSimulateSweepWritesCharts(t *testing.T) {
	dir := t.TempDir()
	chart := filepath.Join(dir, "sweep.svg")
	depth := filepath.Join(dir, "depth.svg")

	stdout, stderr, err := runCommand(t, "simulate", "--fixtures", "../../fixtures", "--sweep",
		"--sweep-sizes", "16,64", "--sweep-workers", "1-2", "--chart", chart, "--depth-chart", depth, burstStream)
	require.NoError(t, err, stderr)

	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 7, "a heading, a blank line, the table header and 4 rows:\n%s", stdout)
	assert.Regexp(t, `^PIPELINE SIZE\s+WORKERS\s+503 RESPONSES\s+P99 DELAY\s+MAX DEPTH$`, lines[2])
	assert.Regexp(t, `^16\s+1\s+\d+\s`, lines[3])
	assert.Regexp(t, `^64\s+2\s+\d+\s`, lines[6])
	for _, path := range []string{chart, depth} {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Contains(t, string(data), "<svg", path)
	}
}

func TestSimulateFlagErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"no stream":     {args: nil, want: "expected one STREAM argument, got 0"},
		"bad latency":   {args: []string{"--api-latency", "soon", burstStream}, want: `"soon"`},
		"zero size":     {args: []string{"--event-pipeline-size", "0", burstStream}, want: "invalid --event-pipeline-size 0"},
		"zero workers":  {args: []string{"--event-worker-count", "0", burstStream}, want: "invalid --event-worker-count 0"},
		"zero speed":    {args: []string{"--speed", "0", burstStream}, want: "invalid --speed 0"},
		"chart alone":   {args: []string{"--chart", "x.svg", burstStream}, want: "--chart draws a sweep: add --sweep"},
		"bad grid":      {args: []string{"--sweep", "--sweep-sizes", "8-x", burstStream}, want: "--sweep-sizes: invalid"},
		"bad output":    {args: []string{"--output", "xml", burstStream}, want: `invalid --output "xml"`},
		"bad intervals": {args: []string{"--intervals", "0", burstStream}, want: "invalid --intervals 0"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := runCommand(t, append([]string{"simulate", "--fixtures", "../../fixtures"}, tc.args...)...)
			require.Error(t, err)
			message := stderr
			if err != errUsage {
				message += err.Error()
			}
			assert.Contains(t, message, tc.want)
		})
	}
}

func TestSimulateWarnsOfRedactedSignatures(t *testing.T) {
	data, err := os.ReadFile("../../fixtures/streams/github.jsonl")
	require.NoError(t, err)
	redacted := regexp.MustCompile(`"X-Hub-Signature-256":\["sha256=[0-9a-f]+"\]`).ReplaceAllString(string(data), `"X-Hub-Signature-256":["REDACTED"]`)
	require.NotEqual(t, string(data), redacted)
	stream := writeTestStream(t, redacted)

	_, stderr, err := runCommand(t, "simulate", "--fixtures", "../../fixtures", stream)
	require.NoError(t, err)
	assert.Contains(t, stderr, "warning: 8 webhook deliveries got 401 because their signatures were redacted")

	_, stderr, err = runCommand(t, "simulate", "--fixtures", "../../fixtures", "--trust-signatures", stream)
	require.NoError(t, err)
	assert.NotContains(t, stderr, "warning:")
}

func TestSimulateSweepJSON(t *testing.T) {
	stdout, stderr, err := runCommand(t, "simulate", "--fixtures", "../../fixtures", "--sweep", "--sweep-sizes", "8,16", "--sweep-workers", "1", "--output", "json", burstStream)
	require.NoError(t, err, stderr)

	var report struct {
		Requests   int
		APILatency string
		Rows       []struct{ PipelineSize, Workers, Rejected int }
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &report))
	assert.Equal(t, 500, report.Requests)
	assert.Equal(t, "20ms", report.APILatency)
	require.Len(t, report.Rows, 2)
	assert.Equal(t, 8, report.Rows[0].PipelineSize)
	assert.Equal(t, 16, report.Rows[1].PipelineSize)
	assert.GreaterOrEqual(t, report.Rows[0].Rejected, report.Rows[1].Rejected, "a larger pipeline rejects no more here")
}
