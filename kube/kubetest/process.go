package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopGracePeriod is how long a component may take to exit after SIGTERM
// before it gets SIGKILL.
const stopGracePeriod = 10 * time.Second

// pollInterval is the pause between readiness probes.
const pollInterval = 100 * time.Millisecond

// process is a started component whose combined stdout and stderr go to
// logPath.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

func startProcess(dir, name, path string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the %s log: %w", name, err)
	}

	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}

	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error describing the exit when the process has exited,
// else nil.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) exited during start: %v", p.name, p.cmd.Process.Pid, p.waitErr)
	default:
		return nil
	}
}

// stop sends SIGTERM and, if the process is still running after grace,
// SIGKILL. It returns an error only when the process cannot be stopped.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}

	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGTERM to %s (pid %d): %w", p.name, pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}

	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGKILL to %s (pid %d): %w", p.name, pid, err)
	}
	// SIGKILL cannot be caught, so only an unkillable process (stuck in
	// the kernel) gets here.
	const killWait = 10 * time.Second
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) still running %s after SIGKILL", p.name, pid, killWait)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type etcdProcess struct {
	*process
	url string
}

func startEtcd(dir, path string) (*etcdProcess, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)

	p, err := startProcess(dir, "etcd", path,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		// The data is thrown away after the test, so durability buys
		// nothing and fsync would slow every write.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	return &etcdProcess{process: p, url: clientURL}, nil
}

func waitEtcdHealthy(ctx context.Context, etcd *etcdProcess) error {
	client := &http.Client{Timeout: 2 * time.Second}
	healthURL := etcd.url + "/health"
	var lastErr error
	for {
		if err := etcd.exited(); err != nil {
			return err
		}
		body, status, err := get(ctx, client, healthURL, "")
		if err == nil && status == http.StatusOK && strings.Contains(body, `"health":"true"`) {
			return nil
		}
		lastErr = describeProbe(status, body, err)

		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd at %s not healthy before the start timeout, last probe: %v", etcd.url, lastErr)
		case <-time.After(pollInterval):
		}
	}
}

type apiserverProcess struct {
	*process
	url string
}

// serviceAccountIssuer is the issuer kube-apiserver puts in service-account
// tokens. Nothing fetches it, but the flag is required.
const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

func startAPIServer(dir, path string, creds credentials, etcdURL string, extraFlags []string) (*apiserverProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + etcdURL,
		// kube-apiserver writes self-signed certificates here when it
		// has none, so keep it in the test directory and not in
		// /var/run/kubernetes.
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + creds.servingCertFile,
		"--tls-private-key-file=" + creds.servingKeyFile,
		"--token-auth-file=" + creds.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-signing-key-file=" + creds.saKeyFile,
		"--service-account-key-file=" + creds.saPublicKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The default reconciler publishes the advertise address in the
		// default/kubernetes Endpoints and rejects a loopback address.
		// Nothing in the tests reaches kube-apiserver through that Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	args = append(args, extraFlags...)

	p, err := startProcess(dir, "kube-apiserver", path, args...)
	if err != nil {
		return nil, err
	}
	return &apiserverProcess{process: p, url: "https://127.0.0.1:" + strconv.Itoa(port)}, nil
}

func waitAPIServerReady(ctx context.Context, apiserver *apiserverProcess, creds credentials) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(creds.caPEM) {
		return errors.New("parse the generated CA certificate: no certificate found")
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	defer client.CloseIdleConnections()

	readyURL := apiserver.url + "/readyz"
	var lastErr error
	for {
		if err := apiserver.exited(); err != nil {
			return err
		}
		body, status, err := get(ctx, client, readyURL, creds.adminToken)
		if err == nil && status == http.StatusOK {
			return nil
		}
		lastErr = describeProbe(status, body, err)

		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver at %s not ready before the start timeout, last /readyz probe: %v", apiserver.url, lastErr)
		case <-time.After(pollInterval):
		}
	}
}

// get sends a GET request and returns at most the first 4 KiB of the body.
func get(ctx context.Context, client *http.Client, url, bearerToken string) (body string, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return string(data), resp.StatusCode, err
}

func describeProbe(status int, body string, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("status %d: %s", status, strings.TrimSpace(body))
}
