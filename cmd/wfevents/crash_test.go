package main

// Tests of the durable event queue (--event-queue-dir): the serve flags and
// start-up errors, the replay in embedded mode, and a crash test that kills
// a real wfevents process with SIGKILL while events arrive.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

func TestServeEventQueueRejectsSyncDispatch(t *testing.T) {
	stderr := &syncBuffer{}

	err := run(t.Context(), []string{"serve", "--event-queue-dir", t.TempDir(), "--event-async-dispatch=false"}, stderr, stderr)

	require.ErrorIs(t, err, errUsage)
	assert.Contains(t, stderr.String(), "invalid --event-queue-dir")
	assert.Contains(t, stderr.String(), "with --event-async-dispatch=false")
}

func TestServeEventQueueLockedFailsFast(t *testing.T) {
	dir := t.TempDir()
	holder, err := workers.OpenStore(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Close() })
	stderr := &syncBuffer{}

	start := time.Now()
	err = run(t.Context(), []string{"serve", "--addr", freeAddr(t), "--event-queue-dir", dir}, stderr, stderr)

	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "serve waited too long for the lock")
	assert.Contains(t, err.Error(), filepath.Join(dir, workers.StoreFileName))
	assert.Contains(t, err.Error(), "locked by another process")
}

func TestServeEventQueueCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, workers.StoreFileName)
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 1000), 0o600))
	stderr := &syncBuffer{}

	err := run(t.Context(), []string{"serve", "--addr", freeAddr(t), "--event-queue-dir", dir}, stderr, stderr)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "event queue "+path+" is corrupt")
	assert.Contains(t, err.Error(), "move the file aside")
}

func TestEventsReplayedFromQueue(t *testing.T) {
	// An earlier run accepted the reference event and stopped before
	// processing it.
	dir := t.TempDir()
	store, err := workers.OpenStore(dir, nil)
	require.NoError(t, err)
	stored := model.Event{
		ID:         "stored-event",
		Namespace:  "argo",
		Payload:    map[string]any{"message": "hello again"},
		Headers:    map[string][]string{"X-Argo-E2e": {"true"}},
		Caller:     model.Identity{Subject: "admin", Groups: []string{"system:masters"}, AllNamespaces: true},
		ReceivedAt: time.Now(),
	}
	require.NoError(t, store.Put(stored))
	require.NoError(t, store.Close())

	a, _ := startApp(t, func(cfg *app.Config) { cfg.EventQueueDir = dir })
	waitForIdle(t, a)
	require.Eventually(t, a.Pipeline.Accepting, 10*time.Second, 5*time.Millisecond)

	created := createdWorkflows(a)
	require.Len(t, created, 1)
	assert.Equal(t, stored.ID, created[0].GetLabels()[model.LabelEventID])
	parameters, _, err := unstructured.NestedSlice(created[0].Object, "spec", "arguments", "parameters")
	require.NoError(t, err)
	assert.Equal(t, []any{map[string]any{"name": "message", "value": "hello again"}}, parameters)

	// The processed event is gone from the queue.
	a.Stop()
	reopened, err := workers.OpenStore(dir, nil)
	require.NoError(t, err)
	defer reopened.Close()
	pending, err := reopened.Pending()
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// Sizes of the crash test. The pipeline holds every event, so none is
// rejected as full and every 200 before the kill is an event on disk.
const (
	crashEvents    = 200
	crashSenders   = 16
	crashKillAfter = 80 // accepted events before the kill
	crashWait      = 60 * time.Second
)

// crashBigNumber is sent in every event. It has more digits than a float64
// keeps, so a Workflow parameter equal to it shows the payload came back
// from the queue exactly.
const crashBigNumber = "9007199254740993"

// TestCrashReplaysAcceptedEvents kills wfevents with SIGKILL while events
// arrive, starts it again on the same queue directory, and checks that every
// event that got a 200 created exactly one Workflow per matching template,
// and that no event created two.
//
// The Workflows must outlive the killed process, so wfevents runs in cluster
// mode on the package's kube-apiserver rather than on the in-memory embedded
// cluster. The test does not skip with -short, because it is the only check
// of the queue across a real crash.
func TestCrashReplaysAcceptedEvents(t *testing.T) {
	binary := buildWfevents(t)
	c := crashTestCluster(t)
	namespace := c.createNamespace(t)
	// The sender may only create Workflows and read templates: a replayed
	// create that finds AlreadyExists reads the Workflow back as the server.
	token, _ := c.serviceAccount(t, namespace, "sender", createWorkflows, getWorkflowTemplates)
	for _, template := range readCrashTemplates(t, namespace) {
		c.createTemplate(t, template)
	}
	kubeconfig := writeKubeconfig(t, c)
	queueDir := filepath.Join(t.TempDir(), "queue")

	// Send events until crashKillAfter got a 200, then kill the server.
	first := startWfevents(t, binary, "first", kubeconfig, queueDir)
	results := sendCrashEvents(first.url, namespace, token, func() { first.kill(t) })
	first.waitExit(t)
	accepted := acceptedEvents(results)
	t.Logf("before the kill: %d of %d events accepted", len(accepted), crashEvents)
	require.GreaterOrEqual(t, len(accepted), crashKillAfter)

	// Restart on the same directory and let it work through the queue.
	second := startWfevents(t, binary, "second", kubeconfig, queueDir)
	replayed := second.replayedCount(t)
	t.Logf("after the restart: %d events replayed from the queue", replayed)
	require.Positive(t, replayed, "the kill came after every accepted event was processed, so nothing was replayed; kill earlier")
	second.waitIdle(t)
	// A create that reached the API server before the kill, for an event
	// that stayed in the queue, finds its Workflow on the replay.
	t.Logf("after the replay: %d creates found their Workflow already created", strings.Count(second.logs(t), `msg="workflow already created for this event"`))
	assert.NotContains(t, second.logs(t), `msg="template failed for event"`, "the replay reported a template as failed")

	// A second server on the same directory fails at once.
	launched := time.Now()
	third := launchWfevents(t, binary, "locked", kubeconfig, queueDir)
	third.waitExit(t)
	assert.Error(t, third.waitErr, "a second server on the same queue directory started")
	assert.Less(t, time.Since(launched), 10*time.Second, "the second server waited too long for the lock")
	assert.Contains(t, third.logs(t), "locked by another process")

	// A graceful stop leaves nothing in the queue.
	second.terminate(t)
	store, err := workers.OpenStore(queueDir, nil)
	require.NoError(t, err)
	pending, err := store.Pending()
	require.NoError(t, err)
	require.NoError(t, store.Close())
	assert.Empty(t, pending, "events left in the queue after a drained stop")

	checkCrashWorkflows(t, c.listWorkflows(t, namespace), results)
}

// crashResult is what one event's request got.
type crashResult struct {
	n       int
	status  int    // 0 when the request failed
	eventID string // from a 200
	err     error
}

func acceptedEvents(results []crashResult) []crashResult {
	var accepted []crashResult
	for _, result := range results {
		if result.status == http.StatusOK {
			accepted = append(accepted, result)
		}
	}
	return accepted
}

// sendCrashEvents sends crashEvents events from crashSenders goroutines and
// calls kill once crashKillAfter of them got a 200. Requests after the kill
// fail, and those are recorded too.
func sendCrashEvents(url, namespace, token string, kill func()) []crashResult {
	client := &http.Client{Timeout: 10 * time.Second}
	results := make([]crashResult, crashEvents)
	var next, accepted atomic.Int64
	var killOnce sync.Once

	var wg sync.WaitGroup
	for range crashSenders {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= crashEvents {
					return
				}
				results[n] = sendCrashEvent(client, url, namespace, token, n)
				if results[n].status == http.StatusOK && accepted.Add(1) == crashKillAfter {
					killOnce.Do(kill)
				}
			}
		})
	}
	wg.Wait()
	return results
}

func sendCrashEvent(client *http.Client, url, namespace, token string, n int) crashResult {
	result := crashResult{n: n}
	body := fmt.Sprintf(`{"n": %d, "even": %t, "big": %s}`, n, n%2 == 0, crashBigNumber)
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/events/"+namespace, strings.NewReader(body))
	if err != nil {
		result.err = err
		return result
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Crash-Test", "yes")
	resp, err := client.Do(req)
	if err != nil {
		result.err = err
		return result
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	result.status = resp.StatusCode
	if err != nil {
		result.err = err
		result.status = 0
		return result
	}
	if resp.StatusCode == http.StatusOK {
		result.eventID = resp.Header.Get("X-Event-Id")
	} else {
		result.err = fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return result
}

// checkCrashWorkflows checks the Workflows against the requests' results.
// Every accepted event has exactly one Workflow per matching template. No
// event has two from one template, including an event whose request failed
// at the kill. Parameters match the event's payload.
func checkCrashWorkflows(t testing.TB, workflows []unstructured.Unstructured, results []crashResult) {
	t.Helper()
	accepted := acceptedEvents(results)
	numbers := make(map[string]int, len(accepted)) // event ID to n
	for _, result := range accepted {
		numbers[result.eventID] = result.n
	}

	// Count the Workflows by event and template, and check each one's
	// parameters.
	type key struct{ eventID, template string }
	counts := make(map[key]int)
	for _, wf := range workflows {
		labels := wf.GetLabels()
		k := key{labels[model.LabelEventID], labels[model.LabelWorkflowTemplate]}
		counts[k]++

		values := workflowParameters(t, wf)
		if n, ok := numbers[k.eventID]; ok {
			assert.Equal(t, strconv.Itoa(n), values["number"], "parameter number of Workflow %s for event %s", wf.GetName(), k.eventID)
		}
		if k.template == "crash-every" {
			assert.Equal(t, crashBigNumber, values["big"], "parameter big of Workflow %s", wf.GetName())
		}
		if k.template == "crash-even" {
			n, err := strconv.Atoi(values["number"])
			assert.NoError(t, err, "parameter number of Workflow %s", wf.GetName())
			assert.Zero(t, n%2, "Workflow %s from crash-even for an odd event", wf.GetName())
		}
	}

	// Every accepted event created its Workflows.
	var missing []string
	for _, result := range accepted {
		templates := []string{"crash-every"}
		if result.n%2 == 0 {
			templates = append(templates, "crash-even")
		}
		for _, template := range templates {
			if counts[key{result.eventID, template}] == 0 {
				missing = append(missing, fmt.Sprintf("event %d (%s) from %s", result.n, result.eventID, template))
			}
		}
	}

	// No event created two Workflows from one template.
	var duplicated []string
	for k, count := range counts {
		if count > 1 {
			duplicated = append(duplicated, fmt.Sprintf("event %s from %s: %d Workflows", k.eventID, k.template, count))
		}
	}
	slices.Sort(duplicated)

	t.Logf("%d Workflows for %d accepted events; %d missing, %d duplicated", len(workflows), len(accepted), len(missing), len(duplicated))
	assert.Empty(t, missing, "accepted events without their Workflow")
	assert.Empty(t, duplicated, "events with more than one Workflow from a template")
}

// workflowParameters returns the Workflow's parameter values by name.
func workflowParameters(t testing.TB, wf unstructured.Unstructured) map[string]string {
	t.Helper()
	parameters, _, err := unstructured.NestedSlice(wf.Object, "spec", "arguments", "parameters")
	require.NoError(t, err)
	values := make(map[string]string, len(parameters))
	for _, parameter := range parameters {
		fields, ok := parameter.(map[string]any)
		require.True(t, ok, "parameter %v of Workflow %s", parameter, wf.GetName())
		name, _ := fields["name"].(string)
		value, _ := fields["value"].(string)
		values[name] = value
	}
	return values
}

// crashTestCluster returns the admin's access to the package's shared
// kube-apiserver, starting it if needed. Unlike newTestCluster it does not
// skip with -short.
func crashTestCluster(t testing.TB) *testCluster {
	t.Helper()
	shared.once.Do(startSharedCluster)
	require.NoError(t, shared.err, "start the shared test cluster")
	typed, err := kubernetes.NewForConfig(shared.cluster.AdminConfig())
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(shared.cluster.AdminConfig())
	require.NoError(t, err)
	return &testCluster{Cluster: shared.cluster, kube: typed, dynamic: dyn}
}

// readCrashTemplates returns the templates of testdata/crash/templates.yaml
// in namespace.
func readCrashTemplates(t testing.TB, namespace string) []*unstructured.Unstructured {
	t.Helper()
	file, err := os.Open(filepath.Join("testdata", "crash", "templates.yaml"))
	require.NoError(t, err)
	defer file.Close()

	var templates []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(file, 4096)
	for {
		template := &unstructured.Unstructured{}
		err := decoder.Decode(&template.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		template.SetNamespace(namespace)
		templates = append(templates, template)
	}
	require.Len(t, templates, 2)
	return templates
}

// writeKubeconfig writes a kubeconfig for the cluster's admin and returns
// its file name.
func writeKubeconfig(t testing.TB, c *testCluster) string {
	t.Helper()
	config := clientcmdapi.NewConfig()
	config.Clusters["test"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.CAData}
	config.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.AdminToken}
	config.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	config.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*config, path))
	return path
}

// buildWfevents builds the wfevents command into a temporary directory and
// returns the binary's file name. It builds with -race when the test binary
// has it, so the build reuses the packages the test build compiled.
func buildWfevents(t testing.TB) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "wfevents")
	args := []string{"build", "-o", binary}
	if raceEnabled() {
		args = append(args, "-race")
	}
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), "go", append(args, ".")...)
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), output)
	t.Logf("built %s in %s", binary, time.Since(start).Round(time.Millisecond))
	return binary
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, setting := range info.Settings {
		if setting.Key == "-race" {
			return setting.Value == "true"
		}
	}
	return false
}

// wfeventsProcess is a wfevents server running as a child process.
type wfeventsProcess struct {
	name    string
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
}

// startWfevents starts "wfevents serve" as launchWfevents does and waits
// until /readyz returns 200.
func startWfevents(t testing.TB, binary, name, kubeconfig, queueDir string) *wfeventsProcess {
	t.Helper()
	p := launchWfevents(t, binary, name, kubeconfig, queueDir)
	p.waitReady(t)
	return p
}

// launchWfevents starts "wfevents serve" in cluster mode with the queue in
// queueDir. The process is killed when the test ends if it still runs, and
// its log is printed if the test failed.
func launchWfevents(t testing.TB, binary, name, kubeconfig, queueDir string) *wfeventsProcess {
	t.Helper()
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()

	cmd := exec.Command(binary, "serve",
		"--addr", addr,
		"--kubeconfig", kubeconfig,
		"--event-queue-dir", queueDir,
		"--event-pipeline-size", strconv.Itoa(2*crashEvents),
		"--review-cache-ttl", "1m",
		"--drain-timeout", "20s",
		"--log-level", "debug")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	require.NoError(t, cmd.Start())

	p := &wfeventsProcess{name: name, cmd: cmd, url: "http://" + addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		<-p.exited
		if t.Failed() {
			t.Logf("log of wfevents %s (pid %d):\n%s", p.name, cmd.Process.Pid, p.logs(t))
		}
	})
	return p
}

// waitReady waits until /readyz returns 200, which with a durable queue
// means every replayed event is queued.
func (p *wfeventsProcess) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(crashWait)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			require.FailNow(t, "wfevents exited before it was ready", "wfevents %s: %v\n%s", p.name, p.waitErr, p.logs(t))
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.FailNow(t, "wfevents not ready", "wfevents %s not ready within %s:\n%s", p.name, crashWait, p.logs(t))
}

// waitIdle waits until the pipeline holds no event, read from /metrics.
func (p *wfeventsProcess) waitIdle(t testing.TB) {
	t.Helper()
	require.EventuallyWithT(t, func(collect *assert.CollectT) {
		depth, err := p.pipelineDepth()
		require.NoError(collect, err)
		assert.Zero(collect, depth, "events held by wfevents %s", p.name)
	}, crashWait, 50*time.Millisecond)
}

func (p *wfeventsProcess) pipelineDepth() (float64, error) {
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), "wfevents_pipeline_depth "); ok {
			return strconv.ParseFloat(value, 64)
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no wfevents_pipeline_depth in /metrics")
}

// replayedPattern matches the line the pipeline logs when it finds events
// left in the queue.
var replayedPattern = regexp.MustCompile(`msg="replaying events left in the event queue" events=(\d+)`)

// replayedCount returns how many events the process found in the queue at
// start, from its log.
func (p *wfeventsProcess) replayedCount(t testing.TB) int {
	t.Helper()
	match := replayedPattern.FindStringSubmatch(p.logs(t))
	if match == nil {
		return 0
	}
	n, err := strconv.Atoi(match[1])
	require.NoError(t, err)
	return n
}

// kill sends SIGKILL unless the process has exited.
func (p *wfeventsProcess) kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
	default:
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill wfevents %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
		}
	}
}

// terminate sends SIGTERM and requires a clean exit.
func (p *wfeventsProcess) terminate(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.waitExit(t)
	require.NoError(t, p.waitErr, "wfevents %s did not stop cleanly:\n%s", p.name, p.logs(t))
}

// waitExit waits until the process has exited.
func (p *wfeventsProcess) waitExit(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(crashWait):
		require.FailNow(t, "wfevents did not exit", "wfevents %s (pid %d) still runs after %s", p.name, p.cmd.Process.Pid, crashWait)
	}
}

func (p *wfeventsProcess) logs(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	return string(data)
}
