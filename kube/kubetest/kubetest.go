// Package kubetest starts a real kube-apiserver and etcd on 127.0.0.1 for
// integration tests.
//
// The binaries are not downloaded: tools/kube/build.sh builds kube-apiserver
// v1.37.2 and etcd v3.7.3 from the Go module proxy into a cache directory
// outside the repository (run `make kube-binaries`). kubetest looks for them in
// $WFEVENTS_KUBE_BIN, else in
// ${XDG_CACHE_HOME:-$HOME/.cache}/wfevents/kube-v1.37.2-etcd-v3.7.3, and fails
// the test when they are missing.
//
// A test that needs its own cluster calls Start or StartWithOptions. Because a
// start takes seconds, a package whose tests can share one cluster starts it
// from TestMain with RunShared (or StartShared) and declares every static
// token up front, since kube-apiserver reads the token file once at start:
//
//	var cluster *kubetest.Cluster
//
//	func TestMain(m *testing.M) {
//		opts := kubetest.Options{Tokens: []kubetest.StaticToken{{Token: "alice-token", User: "alice"}}}
//		os.Exit(kubetest.RunShared(m, opts, func(c *kubetest.Cluster) error {
//			cluster = c
//			return kubetest.CreateArgoCRDs(context.Background(), c.AdminConfig())
//		}))
//	}
//
// Tests that share a cluster share its objects too, so each test should work
// in its own namespace.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// Versions of the binaries that tools/kube/build.sh builds. They also name
// the default binary directory, so a version change rebuilds into a new one.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.7.3"
)

// BinDirEnv names the environment variable that overrides the directory
// holding the kube-apiserver and etcd binaries.
const BinDirEnv = "WFEVENTS_KUBE_BIN"

// DefaultStartTimeout bounds how long a start waits for etcd to report healthy
// and kube-apiserver to pass /readyz. A start took 3 to 4 s on a 2-core machine
// (go test ./kube/kubetest), so this leaves room for a loaded CI machine.
const DefaultStartTimeout = 90 * time.Second

// AdminUser is the user name of Cluster.AdminToken. The token is in the
// system:masters group, which RBAC lets do anything.
const AdminUser = "kubetest-admin"

// StaticToken is one row of kube-apiserver's --token-auth-file: a bearer
// token and the identity it authenticates as. Such a user has no RBAC
// permissions unless a test grants them or lists a privileged group.
type StaticToken struct {
	Token  string
	User   string
	UID    string // empty means no UID
	Groups []string
}

// Options configures a cluster start. The zero value is valid.
type Options struct {
	// Tokens are static tokens accepted next to Cluster.AdminToken.
	Tokens []StaticToken

	// StartTimeout bounds the wait for etcd and kube-apiserver to become
	// ready. Zero means DefaultStartTimeout.
	StartTimeout time.Duration

	// APIServerFlags are appended to the kube-apiserver command line after
	// the flags kubetest sets, so a later flag overrides an earlier one, for
	// example "--feature-gates=...".
	APIServerFlags []string
}

// Cluster is a running etcd and kube-apiserver pair. Its fields are read-only.
type Cluster struct {
	// URL is the kube-apiserver address, https://127.0.0.1:PORT.
	URL string
	// CAData is the PEM certificate of the CA that signed the serving
	// certificate, for clients that verify TLS.
	CAData []byte
	// AdminToken authenticates as AdminUser in group system:masters.
	AdminToken string
	// EtcdURL is the etcd client address, http://127.0.0.1:PORT.
	EtcdURL string
	// Dir contains the generated certificates, keys, token file, etcd data
	// and the component logs. It is removed when the cluster stops.
	Dir string

	processes []*process // in start order, and stopped in reverse order
	stopOnce  sync.Once
	stopErr   error
}

// Start starts a cluster with no extra tokens for the test and stops it in
// t.Cleanup. See StartWithOptions.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithTokens starts a cluster that also accepts the given static tokens,
// and stops it in t.Cleanup.
func StartWithTokens(t testing.TB, tokens ...StaticToken) *Cluster {
	t.Helper()
	return StartWithOptions(t, Options{Tokens: tokens})
}

// StartWithOptions starts etcd and kube-apiserver in a directory under
// t.TempDir and waits until kube-apiserver is ready. It fails the test when
// the binaries are missing or the start fails. t.Cleanup stops both processes
// and, when the test failed, logs the tail of their logs.
func StartWithOptions(t testing.TB, opts Options) *Cluster {
	t.Helper()

	c, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}

	t.Logf("kubetest: kube-apiserver ready at %s, logs in %s", c.URL, c.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: the test failed, component logs of the cluster at %s:\n%s", c.URL, c.LogTail(logTailLines))
		}
		if err := c.stop(); err != nil {
			t.Errorf("kubetest: %v", err)
		}
	})
	return c
}

// StartShared starts a cluster that outlives any single test, in a new
// temporary directory. The caller must call stop, which stops both processes
// and removes the directory; it is safe to call more than once. Prefer
// RunShared, which also prints the logs when a test fails.
func StartShared(opts Options) (c *Cluster, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, nil, fmt.Errorf("create the cluster directory: %w", err)
	}
	c, err = start(dir, opts)
	if err != nil {
		if removeErr := os.RemoveAll(dir); removeErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, removeErr))
		}
		return nil, nil, err
	}
	stop = func() error {
		err := c.stop()
		if removeErr := os.RemoveAll(dir); removeErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, removeErr))
		}
		return err
	}
	return c, stop, nil
}

// RunShared starts one cluster, passes it to setup, runs the package's tests
// with m.Run, stops the cluster and returns the exit code for os.Exit. When
// the start, setup or a test fails, it prints the tail of the component logs
// to stderr. A failed start, setup or stop makes the exit code non-zero.
func RunShared(m *testing.M, opts Options, setup func(*Cluster) error) int {
	c, stop, err := StartShared(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "kubetest: shared kube-apiserver ready at %s\n", c.URL)

	code := 0
	if setup != nil {
		if err := setup(c); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: set up the shared cluster: %v\n", err)
			code = 1
		}
	}
	if code == 0 {
		code = m.Run()
	}

	if code != 0 {
		fmt.Fprintf(os.Stderr, "kubetest: component logs of the shared cluster:\n%s\n", c.LogTail(logTailLines))
	}
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// AdminConfig returns a new client configuration for AdminUser that verifies
// the serving certificate against CAData.
func (c *Cluster) AdminConfig() *rest.Config {
	return c.ConfigForToken(c.AdminToken)
}

// ConfigForToken returns a new client configuration that authenticates with
// the bearer token, which should be AdminToken or one of Options.Tokens.
// Client-side rate limiting is off, because tests create objects in bursts
// and client-go's default of 5 requests per second would slow them.
func (c *Cluster) ConfigForToken(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.CAData...)},
		// client-go adds no rate limiter when QPS is negative.
		QPS:   -1,
		Burst: -1,
	}
}

// LogTail returns the last lines of each component's log, with a header
// naming the log file.
func (c *Cluster) LogTail(lines int) string {
	var b strings.Builder
	for _, p := range c.processes {
		fmt.Fprintf(&b, "==> %s (last %d lines) <==\n%s\n", p.logPath, lines, tailFile(p.logPath, lines))
	}
	return b.String()
}

// stop stops the processes in reverse start order. The first call does the
// work and later calls return its result.
func (c *Cluster) stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for i := len(c.processes) - 1; i >= 0; i-- {
			errs = append(errs, c.processes[i].stop(stopGracePeriod))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// BinDir returns the directory searched for the kube-apiserver and etcd
// binaries: $WFEVENTS_KUBE_BIN, else the default of tools/kube/build.sh.
func BinDir() string {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir
	}
	// This follows build.sh's ${XDG_CACHE_HOME:-$HOME/.cache} and not
	// os.UserCacheDir, which differs from it on macOS.
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(cache, "wfevents", "kube-"+KubeVersion+"-etcd-"+EtcdVersion)
}

// binaries holds the paths of the two executables.
type binaries struct {
	apiserver, etcd string
}

func findBinaries() (binaries, error) {
	dir := BinDir()
	bins := binaries{
		apiserver: filepath.Join(dir, "kube-apiserver"),
		etcd:      filepath.Join(dir, "etcd"),
	}
	for _, path := range []string{bins.apiserver, bins.etcd} {
		info, err := os.Stat(path)
		if err != nil || info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			return binaries{}, fmt.Errorf("executable %s not found: run `make kube-binaries` (tools/kube/build.sh) to build kube-apiserver %s and etcd %s, or set %s to a directory that contains both",
				path, KubeVersion, EtcdVersion, BinDirEnv)
		}
	}
	return bins, nil
}

// start generates the credentials in dir and starts etcd and kube-apiserver.
// A free port found by listening on port 0 can be taken by another process
// before the component binds it, so a start that fails with "address already
// in use" is retried with new ports.
func start(dir string, opts Options) (*Cluster, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	creds, err := writeCredentials(dir, opts.Tokens)
	if err != nil {
		return nil, err
	}

	const maxAttempts = 3
	for attempt := 1; ; attempt++ {
		attemptDir := filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt))
		c, err := startOnce(attemptDir, bins, creds, opts)
		if err == nil {
			c.Dir = dir
			return c, nil
		}
		if attempt == maxAttempts || !errors.Is(err, errAddressInUse) {
			return nil, err
		}
	}
}

// errAddressInUse marks a start that failed because a port was taken.
var errAddressInUse = errors.New("address already in use")

func startOnce(dir string, bins binaries, creds credentials, opts Options) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()

	c := &Cluster{CAData: creds.caPEM, AdminToken: creds.adminToken}
	fail := func(err error) (*Cluster, error) {
		tail := c.LogTail(logTailLines)
		stopErr := c.stop()
		if strings.Contains(tail, "address already in use") {
			err = fmt.Errorf("%w (%w)", err, errAddressInUse)
		}
		return nil, errors.Join(fmt.Errorf("%w\ncomponent logs:\n%s", err, tail), stopErr)
	}

	etcd, err := startEtcd(dir, bins.etcd)
	if err != nil {
		return fail(err)
	}
	c.processes = append(c.processes, etcd.process)
	c.EtcdURL = etcd.url
	if err := waitEtcdHealthy(ctx, etcd); err != nil {
		return fail(err)
	}

	apiserver, err := startAPIServer(dir, bins.apiserver, creds, c.EtcdURL, opts.APIServerFlags)
	if err != nil {
		return fail(err)
	}
	c.processes = append(c.processes, apiserver.process)
	c.URL = apiserver.url
	if err := waitAPIServerReady(ctx, apiserver, creds); err != nil {
		return fail(err)
	}
	return c, nil
}

// logTailLines is how many lines of each component log a failure prints.
const logTailLines = 60

// tailFile returns the last n lines of the file, or a note saying why it
// could not be read.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	defer f.Close()

	// Reading at most the last 64 KiB keeps a long log from flooding memory.
	const maxBytes = 64 << 10
	if info, err := f.Stat(); err == nil && info.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read the log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
