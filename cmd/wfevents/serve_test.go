package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := listener.Addr().String()
	require.NoError(t, listener.Close())
	return addr
}

func TestServeStartsAndStopsOnCancel(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--addr", addr}, logs, logs) }()

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "server did not become ready; logs:\n%s", logs)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not stop after cancel; logs:\n%s", logs)
	}
	assert.Contains(t, logs.String(), "msg=listening")
	assert.Contains(t, logs.String(), "msg=stopped events_left=0")
}

func TestServeFailsOnBusyPort(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { listener.Close() })
	logs := &syncBuffer{}

	err = run(t.Context(), []string{"serve", "--addr", listener.Addr().String()}, logs, logs)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen on "+listener.Addr().String())
}

func TestServeRejectsBadFlags(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantStderr string
		wantError  string
	}{
		{name: "unknown flag", args: []string{"serve", "--nope"}, wantStderr: "flag provided but not defined: -nope"},
		{name: "bad log format", args: []string{"serve", "--log-format", "xml"}, wantStderr: `invalid --log-format "xml"`},
		{name: "extra argument", args: []string{"serve", "extra"}, wantStderr: `unexpected argument "extra"`},
		{name: "unknown command", args: []string{"launch"}, wantStderr: `unknown command "launch"`},
		{name: "negative pipeline size", args: []string{"serve", "--event-pipeline-size", "-1"}, wantStderr: "invalid --event-pipeline-size -1: must be positive"},
		{name: "zero worker count", args: []string{"serve", "--event-worker-count", "0"}, wantStderr: "invalid --event-worker-count 0"},
		{name: "zero body limit", args: []string{"serve", "--max-body-bytes", "0"}, wantStderr: "invalid --max-body-bytes 0"},
		{name: "negative drain timeout", args: []string{"serve", "--drain-timeout", "-1s"}, wantStderr: "invalid --drain-timeout -1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stderr := &syncBuffer{}

			err := run(t.Context(), tc.args, stderr, stderr)

			require.Error(t, err)
			assert.Contains(t, stderr.String(), tc.wantStderr)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

func TestServeFixturesDirectoryError(t *testing.T) {
	stderr := &syncBuffer{}

	err := run(t.Context(), []string{"serve", "--fixtures", t.TempDir()}, stderr, stderr)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "load fixtures from")
	assert.Contains(t, err.Error(), "cluster/*.yaml and tokens.csv")
}
