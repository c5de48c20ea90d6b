//go:build unix

package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/kube/kubetest"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

// benchWorkers is the concurrency of both phases: wfevents' default event
// worker count, and as many goroutines in the client-go loop.
const benchWorkers = workers.DefaultWorkers

// phaseTimeout bounds one measured phase. A phase of 2,000 Workflows took
// 3 to 11 s on a 2-core machine shared with other builds, so one that runs
// into this bound has stalled.
const phaseTimeout = 60 * time.Second

// benchMessage is the reference event's message, and the parameter value of
// every Workflow both phases create.
const benchMessage = "hello events"

// BenchmarkClusterWorkflows compares, on a real kube-apiserver and etcd
// started once for the run, how fast wfevents turns events into Workflows
// with how fast client-go alone creates the same Workflows.
//
// "client-go" creates b.N Workflows from benchWorkers goroutines through one
// dynamic client that impersonates the event sender, as wfevents does.
// "client-go-read-template" also reads the WorkflowTemplate before each
// create, as wfevents' workers do, so it sends the API server the requests
// that wfevents sends, without wfevents' own work.
// "wfevents" builds wfevents with app.NewCluster as the API server's admin,
// calls its handler with b.N events in this process, without HTTP, and
// waits until its benchWorkers workers have created b.N Workflows. A
// Workflow counts once the API server responded to its create with 201, and
// after each phase a list of the namespace must contain exactly b.N
// Workflows.
//
// Each phase reports Workflows/s, the API requests per Workflow (and logs
// them by verb and resource), and the CPU per Workflow of kube-apiserver,
// etcd and this process, because on a small machine they share the same
// cores.
// "wfevents" also reports its rate as a percentage of the last "client-go"
// rate of the same run. Run it with a fixed count, such as -benchtime
// 2000x, so both phases create the same number of Workflows.
func BenchmarkClusterWorkflows(b *testing.B) {
	if testing.Short() {
		b.Skip("skipped with -short: the benchmark needs a kube-apiserver")
	}
	env := startBenchCluster(b)

	var bare float64
	b.Run("client-go", func(b *testing.B) { bare = env.benchClientGo(b, false) })
	b.Run("client-go-read-template", func(b *testing.B) { env.benchClientGo(b, true) })
	b.Run("wfevents", func(b *testing.B) {
		served := env.benchWfevents(b)
		if bare > 0 {
			b.ReportMetric(100*served/bare, "pct-of-client-go")
		}
	})
}

// benchCluster is the cluster of one benchmark run, with clients acting as
// its admin.
type benchCluster struct {
	cluster  *kubetest.Cluster
	admin    kubernetes.Interface
	dynamic  dynamic.Interface
	requests *requestCounter
}

func startBenchCluster(b *testing.B) *benchCluster {
	b.Helper()
	cluster := kubetest.Start(b)
	kubetest.InstallArgoCRDs(b, cluster.AdminConfig())
	admin, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cluster.AdminConfig())
	if err != nil {
		b.Fatal(err)
	}
	return &benchCluster{cluster: cluster, admin: admin, dynamic: dyn, requests: &requestCounter{}}
}

// countingConfig returns the admin configuration with every request counted.
func (c *benchCluster) countingConfig() *rest.Config {
	config := c.cluster.AdminConfig()
	config.WrapTransport = c.requests.wrap
	return config
}

// benchTarget is a namespace of one phase, with a sender allowed to create
// Workflows and read WorkflowTemplates there, and the reference template.
type benchTarget struct {
	namespace string
	token     string
	caller    model.Identity // as the API server's TokenReview reports it
}

// newTarget creates a namespace for one phase, so that counting its
// Workflows counts only that phase's.
func (c *benchCluster) newTarget(b *testing.B) benchTarget {
	b.Helper()
	ctx := b.Context()

	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	created, err := c.admin.CoreV1().Namespaces().Create(ctx, namespace, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	target := benchTarget{namespace: created.Name}

	// The sender: a ServiceAccount with a Role as narrow as wfevents needs.
	const name = "sender"
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{kube.WorkflowsResource.Group}, Resources: []string{kube.WorkflowsResource.Resource}, Verbs: []string{"create"}},
		{APIGroups: []string{kube.WorkflowTemplatesResource.Group}, Resources: []string{kube.WorkflowTemplatesResource.Resource}, Verbs: []string{"get"}},
	}
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: target.namespace, Name: name}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	if _, err := c.admin.CoreV1().ServiceAccounts(target.namespace).Create(ctx, account, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.admin.RbacV1().Roles(target.namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.admin.RbacV1().RoleBindings(target.namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	expiration := int64(3600)
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration}}
	response, err := c.admin.CoreV1().ServiceAccounts(target.namespace).CreateToken(ctx, name, request, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	target.token = response.Status.Token

	// The identity wfevents impersonates is the one TokenReview returns.
	target.caller, err = kube.NewReviewer(c.admin, kube.ReviewConfig{}).Authenticate(ctx, model.Token(target.token))
	if err != nil {
		b.Fatal(err)
	}

	template := referenceTemplate(b, target.namespace, fmt.Sprintf(
		`metadata.claimSet.sub == %q && event.message != "" && metadata["x-argo-e2e"] == ["true"]`, target.caller.Subject))
	_, err = c.dynamic.Resource(kube.WorkflowTemplatesResource).Namespace(target.namespace).Create(ctx, template, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return target
}

// referenceTemplate returns the fixture event-consumer in namespace with
// its expression replaced.
func referenceTemplate(b *testing.B, namespace, expression string) *unstructured.Unstructured {
	b.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	if err != nil {
		b.Fatal(err)
	}
	for _, obj := range seed.Objects {
		if obj.GetKind() != "WorkflowTemplate" || obj.GetName() != "event-consumer" {
			continue
		}
		template := obj.DeepCopy()
		template.SetNamespace(namespace)
		template.SetUID("")
		template.SetResourceVersion("")
		if err := unstructured.SetNestedField(template.Object, expression, "spec", "event", "expression"); err != nil {
			b.Fatal(err)
		}
		return template
	}
	b.Fatal("fixture WorkflowTemplate event-consumer not found")
	return nil
}

// benchClientGo creates b.N Workflows from benchWorkers goroutines, each
// after a read of the template when readTemplate is set, and returns the
// Workflows created per second.
func (c *benchCluster) benchClientGo(b *testing.B, readTemplate bool) float64 {
	target := c.newTarget(b)
	config := c.countingConfig()
	config.Impersonate = rest.ImpersonationConfig{
		UserName: target.caller.Subject,
		UID:      target.caller.UID,
		Groups:   target.caller.Groups,
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		b.Fatal(err)
	}
	workflows := dyn.Resource(kube.WorkflowsResource).Namespace(target.namespace)
	templates := dyn.Resource(kube.WorkflowTemplatesResource).Namespace(target.namespace)

	ctx, cancel := context.WithTimeout(b.Context(), phaseTimeout)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, benchWorkers)
	phase := c.startPhase(b)
	for w := range benchWorkers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if readTemplate {
					if _, err := templates.Get(ctx, "event-consumer", metav1.GetOptions{}); err != nil {
						errs[w] = fmt.Errorf("read the template before Workflow %d: %w", i, err)
						return
					}
				}
				obj := kube.WorkflowToObject(benchWorkflow(target, strconv.FormatInt(i, 10)))
				if _, err := workflows.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
					errs[w] = fmt.Errorf("create Workflow %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return c.endPhase(b, phase, target)
}

// benchWorkflow returns the Workflow that wfevents creates in target for
// the reference event with the given ID, with the same labels and
// parameters. Its name ends in the ID, where wfevents' ends in a hash.
func benchWorkflow(target benchTarget, eventID string) model.Workflow {
	return model.Workflow{
		Namespace:    target.namespace,
		Name:         "event-consumer-" + eventID,
		GenerateName: "event-consumer-",
		Labels: map[string]string{
			model.LabelWorkflowTemplate: "event-consumer",
			model.LabelCreator:          workers.LabelValue(target.caller.Subject),
			model.LabelEventID:          eventID,
		},
		TemplateRef: model.TemplateRef{Name: "event-consumer"},
		Parameters:  []model.ParameterValue{{Name: "message", Value: benchMessage}},
	}
}

// benchWfevents sends b.N events to wfevents and returns the Workflows it
// created per second.
func (c *benchCluster) benchWfevents(b *testing.B) float64 {
	target := c.newTarget(b)

	// Count each Workflow that a worker got back from the API server, and
	// stop at the first failure. An event leaves the pipeline only after
	// its worker has called processed, so up to benchWorkers processed
	// events still take a slot. The sender keeps that many slots free, so
	// it never gets a 503.
	var created atomic.Int64
	done := make(chan struct{})
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	inFlight := make(chan struct{}, workers.DefaultSize-benchWorkers)
	processed := func(ev model.Event, outcomes []workers.Outcome) {
		<-inFlight
		for _, outcome := range outcomes {
			switch {
			case outcome.Err != nil:
				fail(fmt.Errorf("event %s, %s: %w", ev.ID, outcome.Ref, outcome.Err))
			case outcome.Workflow != nil:
				if created.Add(1) == int64(b.N) {
					close(done)
				}
			}
		}
	}
	running, err := app.NewCluster(app.Config{
		PipelineSize: workers.DefaultSize,
		WorkerCount:  benchWorkers,
		Logger:       slog.New(slog.DiscardHandler),
		Processed:    processed,
	}, app.ClusterConfig{REST: c.countingConfig()})
	if err != nil {
		b.Fatal(err)
	}
	syncCtx, cancel := context.WithTimeout(b.Context(), phaseTimeout)
	defer cancel()
	if !running.Start(syncCtx) {
		b.Fatal("template caches did not sync")
	}
	defer running.Stop()

	ctx, cancel := context.WithTimeout(b.Context(), phaseTimeout)
	defer cancel()
	phase := c.startPhase(b)
	go func() {
		if err := sendEvents(ctx, running.Handler, target, b.N, inFlight); err != nil {
			fail(err)
		}
	}()
	select {
	case <-done:
	case err := <-failed:
		b.Fatal(err)
	case <-ctx.Done():
		b.Fatalf("%d of %d Workflows created after %s", created.Load(), b.N, phaseTimeout)
	}
	return c.endPhase(b, phase, target)
}

// sendEvents sends n reference events from target's sender to handler,
// each once it has put a value into inFlight. Any status but 200 is an
// error.
func sendEvents(ctx context.Context, handler http.Handler, target benchTarget, n int, inFlight chan<- struct{}) error {
	body := []byte(`{"message": "` + benchMessage + `"}`)
	for i := range n {
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d events sent: %w", i, n, ctx.Err())
		}
		request := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/events/"+target.namespace, bytes.NewReader(body))
		request.Header.Set("Authorization", "Bearer "+target.token)
		request.Header.Set("X-Argo-E2E", "true")
		recorder := httptest.NewRecorder()
		handler.ServeHTTP(recorder, request)
		if recorder.Code != http.StatusOK {
			return fmt.Errorf("event %d: status %d: %s", i+1, recorder.Code, recorder.Body)
		}
	}
	return nil
}

// phaseStart holds the CPU counters at the start of a timed phase.
type phaseStart struct {
	apiserverCPU, etcdCPU, selfCPU float64
}

// startPhase reads the CPU counters, clears the request counts and starts
// the timer.
func (c *benchCluster) startPhase(b *testing.B) phaseStart {
	b.Helper()
	start := phaseStart{
		apiserverCPU: c.apiserverCPU(b),
		etcdCPU:      c.etcdCPU(b),
		selfCPU:      selfCPU(),
	}
	c.requests.reset()
	b.ResetTimer()
	return start
}

// endPhase stops the timer, checks that target's namespace contains exactly
// b.N Workflows, reports the phase's figures and returns its Workflows/s.
func (c *benchCluster) endPhase(b *testing.B, start phaseStart, target benchTarget) float64 {
	b.Helper()
	b.StopTimer()
	elapsed := b.Elapsed()
	requests := c.requests.snapshot()
	self := selfCPU() - start.selfCPU
	apiserver := c.apiserverCPU(b) - start.apiserverCPU
	etcd := c.etcdCPU(b) - start.etcdCPU

	list, err := c.dynamic.Resource(kube.WorkflowsResource).Namespace(target.namespace).List(b.Context(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != b.N {
		b.Fatalf("namespace %s contains %d Workflows, want %d", target.namespace, len(list.Items), b.N)
	}

	n := float64(b.N)
	rate := n / elapsed.Seconds()
	total := 0
	for _, count := range requests {
		total += count
	}
	b.ReportMetric(rate, "workflows/s")
	b.ReportMetric(float64(total)/n, "requests/workflow")
	b.ReportMetric(1000*apiserver/n, "apiserver-cpu-ms/workflow")
	b.ReportMetric(1000*etcd/n, "etcd-cpu-ms/workflow")
	b.ReportMetric(1000*self/n, "bench-cpu-ms/workflow")
	if b.N > 1 {
		b.Logf("%d Workflows in %s; API requests: %s", b.N, elapsed.Round(time.Millisecond), formatCounts(requests))
	}
	return rate
}

// formatCounts lists request counts by key, sorted.
func formatCounts(counts map[string]int) string {
	keys := slices.Sorted(maps.Keys(counts))
	parts := make([]string, len(keys))
	for i, key := range keys {
		parts[i] = fmt.Sprintf("%s %d", key, counts[key])
	}
	return strings.Join(parts, ", ")
}

// apiserverCPU returns kube-apiserver's process_cpu_seconds_total.
func (c *benchCluster) apiserverCPU(b *testing.B) float64 {
	b.Helper()
	body, err := c.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(b.Context())
	if err != nil {
		b.Fatalf("read kube-apiserver metrics: %v", err)
	}
	return processCPU(b, "kube-apiserver", body)
}

// etcdCPU returns etcd's process_cpu_seconds_total.
func (c *benchCluster) etcdCPU(b *testing.B) float64 {
	b.Helper()
	request, err := http.NewRequestWithContext(b.Context(), http.MethodGet, c.cluster.EtcdURL+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		b.Fatalf("read etcd metrics: %v", err)
	}
	defer response.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(response.Body); err != nil {
		b.Fatalf("read etcd metrics: %v", err)
	}
	return processCPU(b, "etcd", body.Bytes())
}

// processCPU finds process_cpu_seconds_total in a Prometheus text
// exposition.
func processCPU(b *testing.B, component string, exposition []byte) float64 {
	b.Helper()
	scanner := bufio.NewScanner(bytes.NewReader(exposition))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		value, found := strings.CutPrefix(scanner.Text(), "process_cpu_seconds_total ")
		if !found {
			continue
		}
		seconds, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			b.Fatalf("parse the process_cpu_seconds_total of %s: %v", component, err)
		}
		return seconds
	}
	b.Fatalf("%s reports no process_cpu_seconds_total", component)
	return 0
}

// selfCPU returns the user and system CPU seconds of this process.
func selfCPU() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

// requestCounter counts the API requests of the clients whose transport
// it wraps, by verb and resource. It is safe for concurrent use.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(request *http.Request) (*http.Response, error) {
		key := request.Method + " " + resourceOf(request.URL.Path)
		c.mu.Lock()
		if c.counts == nil {
			c.counts = make(map[string]int)
		}
		c.counts[key]++
		c.mu.Unlock()
		return next.RoundTrip(request)
	})
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(request *http.Request) (*http.Response, error) {
	return f(request)
}

// resourceOf returns the resource an API path names, such as "workflows"
// for /apis/argoproj.io/v1alpha1/namespaces/ns/workflows.
func resourceOf(path string) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segments) >= 2 && segments[0] == "api":
		segments = segments[2:]
	case len(segments) >= 3 && segments[0] == "apis":
		segments = segments[3:]
	default:
		return path
	}
	if len(segments) >= 3 && segments[0] == "namespaces" {
		segments = segments[2:]
	}
	if len(segments) == 0 {
		return path
	}
	return segments[0]
}
