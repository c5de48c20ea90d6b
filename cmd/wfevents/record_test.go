package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/sim"
)

// harTestdata is a HAR file of three events and one Workflow list.
var harTestdata = filepath.Join("..", "..", "sim", "testdata", "webhooks.har")

func TestServeRecordsRequests(t *testing.T) {
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "record.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--record", path, "--record-max-size", "10", "--record-max-backups", "2"}, logs, logs)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "server did not become ready; logs:\n%s", logs)

	status, response := postEvent(t, "http://"+addr+"/api/v1/events/argo",
		map[string]string{"Authorization": "Bearer admin-token"}, strings.NewReader(`{"message":"hello events"}`))
	require.Equal(t, http.StatusOK, status, "response: %v", response)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not stop after cancel; logs:\n%s", logs)
	}

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	requests, err := sim.ReadStream(bytes.NewReader(raw))
	require.NoError(t, err)
	var events []sim.Request
	for _, req := range requests {
		if req.Method == http.MethodPost {
			events = append(events, req)
		}
	}
	require.Len(t, events, 1, "the readiness checks are recorded too; stream:\n%s", raw)
	assert.Equal(t, "/api/v1/events/argo", events[0].Path)
	assert.Equal(t, "admin", events[0].Subject)
	assert.Equal(t, http.StatusOK, events[0].Status)
	assert.Equal(t, response["eventId"], events[0].EventID)
	assert.Equal(t, []string{sim.Redacted}, events[0].Headers["Authorization"])
	assert.NotContains(t, string(raw), "admin-token")
	assert.Contains(t, logs.String(), "msg=\"recording requests\"")
	assert.Contains(t, logs.String(), "msg=\"recording stopped\"")

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "a recording holds bodies, so only its owner may read it")
}

func TestServeRejectsRecordFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	cases := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "zero size", args: []string{"--record", path, "--record-max-size", "0"}, wantStderr: "invalid --record-max-size 0: must be positive"},
		{name: "negative backups", args: []string{"--record", path, "--record-max-backups", "-1"}, wantStderr: "invalid --record-max-backups -1: must not be negative"},
		{name: "size below a line", args: []string{"--record", path, "--record-max-size", "3"}, wantStderr: "invalid --record-max-size 3 MiB: a file must hold a request whose body is at --max-body-bytes 2097152, so use at least 4 MiB"},
		{name: "size below a larger body limit", args: []string{"--record", path, "--record-max-size", "4", "--max-body-bytes", "4194304"}, wantStderr: "use at least 8"},
		{name: "size without record", args: []string{"--record-max-size", "50"}, wantStderr: "invalid --record-max-size without --record"},
		{name: "backups without record", args: []string{"--record-max-backups", "1"}, wantStderr: "invalid --record-max-backups without --record"},
		{name: "size not a number", args: []string{"--record", path, "--record-max-size", "1GiB"}, wantStderr: `invalid value "1GiB" for flag -record-max-size`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// If validation let the flags pass, the timeout stops the
			// server, so the case fails instead of hanging.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			stderr := &syncBuffer{}

			err := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...), stderr, stderr)

			require.ErrorIs(t, err, errUsage)
			assert.Contains(t, stderr.String(), tc.wantStderr)
		})
	}
	_, err := os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "invalid flags create no file")
}

func TestServeRecordMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "record.jsonl")
	stderr := &syncBuffer{}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--record", path}, stderr, stderr)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid --record")
	assert.Contains(t, err.Error(), "no such file or directory")
	assert.NotContains(t, stderr.String(), "msg=listening", "a wrong path fails before the server starts")
}

func TestRecordHARToFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stream.jsonl")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}

	err := run(t.Context(), []string{"record", "--har", harTestdata, "-o", out}, stdout, stderr)

	require.NoError(t, err, "stderr: %s", stderr)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "wrote 3 requests from "+harTestdata+" to "+out)
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	requests, err := sim.ReadStream(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, requests, 3)
	pushBody, err := os.ReadFile(filepath.Join("..", "..", "sim", "testdata", "github-push.json"))
	require.NoError(t, err)
	assert.Equal(t, pushBody, requests[0].Body)
	assert.Equal(t, []string{sim.Redacted}, requests[0].Headers["X-Hub-Signature-256"])
	assert.NotContains(t, string(raw), "gitlab-webhook-secret")
	info, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestRecordHARAllPathsToStdout(t *testing.T) {
	stdout, stderr := &syncBuffer{}, &syncBuffer{}

	err := run(t.Context(), []string{"record", "--har", harTestdata, "--all-paths"}, stdout, stderr)

	require.NoError(t, err, "stderr: %s", stderr)
	requests, err := sim.ReadStream(strings.NewReader(stdout.String()))
	require.NoError(t, err)
	require.Len(t, requests, 4)
	assert.Equal(t, "/api/v1/workflows/argo", requests[2].Path)
	assert.Contains(t, stderr.String(), "wrote 4 requests")
}

func TestRecordHARWithoutEvents(t *testing.T) {
	har := filepath.Join(t.TempDir(), "list.har")
	require.NoError(t, os.WriteFile(har, []byte(`{"log": {"entries": [{"startedDateTime": "2026-12-04T10:00:00Z", "request": {"method": "GET", "url": "http://h/healthz"}}]}}`), 0o600))
	stdout, stderr := &syncBuffer{}, &syncBuffer{}

	err := run(t.Context(), []string{"record", "--har", har}, stdout, stderr)

	require.NoError(t, err)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "wrote 0 requests")
	assert.Contains(t, stderr.String(), "pass --all-paths")
}

func TestRecordHARWithoutEntries(t *testing.T) {
	har := filepath.Join(t.TempDir(), "empty.har")
	require.NoError(t, os.WriteFile(har, []byte(`{"log": {"version": "1.2", "entries": []}}`), 0o600))
	stdout, stderr := &syncBuffer{}, &syncBuffer{}

	err := run(t.Context(), []string{"record", "--har", har}, stdout, stderr)

	require.NoError(t, err)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "wrote 0 requests")
	assert.Contains(t, stderr.String(), har+" has no entries")
	assert.NotContains(t, stderr.String(), "pass --all-paths")
}

func TestRecordRejectsOutputThatIsHAR(t *testing.T) {
	dir := t.TempDir()
	har := filepath.Join(dir, "capture.har")
	content, err := os.ReadFile(harTestdata)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(har, content, 0o600))
	symlink := filepath.Join(dir, "link.har")
	require.NoError(t, os.Symlink(har, symlink))
	hardLink := filepath.Join(dir, "hard.har")
	require.NoError(t, os.Link(har, hardLink))

	outputs := map[string]string{
		"same path":     har,
		"unclean path":  dir + "/sub/../capture.har",
		"symbolic link": symlink,
		"hard link":     hardLink,
		"relative path": "./" + filepath.Base(har),
	}
	for name, output := range outputs {
		t.Run(name, func(t *testing.T) {
			if !filepath.IsAbs(output) {
				t.Chdir(dir)
			}

			err := run(t.Context(), []string{"record", "--har", har, "-o", output}, &syncBuffer{}, &syncBuffer{})

			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("invalid -o %q: it is the --har file", output))
			after, err := os.ReadFile(har)
			require.NoError(t, err)
			assert.Equal(t, content, after, "the HAR file is unchanged")
		})
	}
}

func TestRecordRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.har")
	require.NoError(t, os.WriteFile(invalid, []byte(`{}`), 0o600))
	out := filepath.Join(dir, "stream.jsonl")
	cases := []struct {
		name       string
		args       []string
		wantUsage  bool
		wantStderr string
		wantError  string
	}{
		{name: "missing har", args: []string{"record"}, wantUsage: true, wantStderr: "missing --har"},
		{name: "positional argument", args: []string{"record", invalid}, wantUsage: true, wantStderr: `unexpected argument "` + invalid + `": name the HAR file with --har`},
		{name: "missing file", args: []string{"record", "--har", filepath.Join(dir, "none.har")}, wantError: "open --har file"},
		{name: "invalid HAR", args: []string{"record", "--har", invalid, "-o", out}, wantError: `invalid HAR: missing "log"`},
		{name: "output directory missing", args: []string{"record", "--har", harTestdata, "-o", filepath.Join(dir, "missing", "out.jsonl")}, wantError: "open -o file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stderr := &syncBuffer{}

			err := run(t.Context(), tc.args, &syncBuffer{}, stderr)

			require.Error(t, err)
			if tc.wantUsage {
				assert.ErrorIs(t, err, errUsage)
				assert.Contains(t, stderr.String(), tc.wantStderr)
			} else {
				assert.Contains(t, err.Error(), tc.wantError)
			}
		})
	}
	_, err := os.Stat(out)
	assert.ErrorIs(t, err, os.ErrNotExist, "an invalid HAR file writes no output")
}
