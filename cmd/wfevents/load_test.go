package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/loadtest"
)

func TestLoadLimitInProcess(t *testing.T) {
	dir := t.TempDir()
	jsonFile, plotFile := filepath.Join(dir, "report", "limit.json"), filepath.Join(dir, "report", "limit.html")
	var stdout, stderr bytes.Buffer

	err := run(t.Context(), []string{"load", "limit",
		"--event-pipeline-size", "8", "--event-worker-count", "2",
		"--max-requests", "50", "--rate", "1000",
		"--json", jsonFile, "--plot", plotFile,
	}, &stdout, &stderr)

	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Logf("summary:\n%s", stdout.String())
	assert.Contains(t, stdout.String(), "limit: sent 50, accepted 8, rejected 42 with 503, pipeline size 8, 8 held, 8 processed once")
	assert.NotContains(t, stdout.String(), "FAIL")

	// The JSON report holds the same counts.
	data, err := os.ReadFile(jsonFile)
	require.NoError(t, err)
	var report loadtest.Report
	require.NoError(t, json.Unmarshal(data, &report))
	require.NotNil(t, report.Limit)
	assert.Equal(t, 8, report.Limit.Accepted)
	assert.Equal(t, 42, report.Limit.Rejected)
	assert.Equal(t, 8, report.Limit.Processed)
	assert.Empty(t, report.Failed())

	// The plot is vegeta's HTML page.
	page, err := os.ReadFile(plotFile)
	require.NoError(t, err)
	assert.Contains(t, string(page), "<title>wfevents load limit</title>")
}

func TestLoadLimitAgainstURLSkipped(t *testing.T) {
	var stdout, stderr bytes.Buffer

	err := run(t.Context(), []string{"load", "limit", "--url", "http://127.0.0.1:9"}, &stdout, &stderr)

	require.NoError(t, err, "stderr:\n%s", stderr.String())
	assert.Contains(t, stdout.String(), "skipped: the limit scenario needs the in-process server")
}

func TestLoadUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{
			name:       "missing scenario",
			args:       []string{"load"},
			wantStderr: "missing scenario",
		},
		{
			name:       "flag before scenario",
			args:       []string{"load", "--rate", "5", "rate"},
			wantStderr: "missing scenario",
		},
		{
			name:       "argument after flags",
			args:       []string{"load", "rate", "--rate", "5", "extra"},
			wantStderr: `unexpected argument "extra"`,
		},
		{
			name:       "in-process flag with URL",
			args:       []string{"load", "rate", "--url", "http://127.0.0.1:9", "--api-latency", "5ms"},
			wantStderr: "invalid --api-latency with --url",
		},
		{
			name:       "unpaced without workers",
			args:       []string{"load", "rate", "--rate", "0"},
			wantStderr: "invalid --rate 0 without --max-workers",
		},
		{
			name:       "header without value",
			args:       []string{"load", "rate", "--header", "X-Argo-E2E"},
			wantStderr: "want NAME=VALUE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer

			err := run(t.Context(), tt.args, &stdout, &stderr)

			require.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr.String(), tt.wantStderr)
		})
	}
}

func TestLoadUnknownScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer

	err := run(t.Context(), []string{"load", "soak"}, &stdout, &stderr)

	require.Error(t, err)
	assert.Contains(t, err.Error(), `invalid scenario "soak": use limit, capacity or rate`)
}

func TestLoadHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer

	err := run(t.Context(), []string{"load", "-h"}, &stdout, &stderr)

	require.NoError(t, err)
	assert.Contains(t, stderr.String(), "Usage: wfevents load SCENARIO [flags]")
	assert.Contains(t, stderr.String(), "-api-latency")
}
