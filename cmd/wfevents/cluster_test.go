package main

// Integration tests of the cluster mode. They run the app against a real
// kube-apiserver and etcd (package kubetest), started once for the package
// by the first test that needs them and stopped by TestMain. Each test works
// in namespaces of its own and starts its own app.
//
// NOTE: the tests do not call t.Parallel. Every app watches the templates of
// all namespaces, so an app running next to another test would load that
// test's templates and record Events on them too.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/kube/kubetest"
	"github.com/wfevents/wfevents/model"
)

const (
	// clusterWait bounds every wait on the cluster: caches to sync,
	// Workflows and Events to appear.
	clusterWait = 20 * time.Second
	clusterTick = 50 * time.Millisecond

	// reviewCacheTTL keeps review results short-lived, so a test that
	// changes RBAC does not wait long for the server to notice.
	reviewCacheTTL = time.Second
)

// shared is the package's test cluster, started by the first sharedCluster
// call.
var shared struct {
	once     sync.Once
	started  bool // set by the first call, so TestMain stops only a started cluster
	cluster  *kubetest.Cluster
	stop     func() error
	auditDir string // contains the audit log, removed after the cluster stops
	auditLog string
	err      error
}

// sharedCluster returns the package's kube-apiserver, with the Argo CRDs
// installed and an audit log of Workflow creates, starting it on first use.
// Tests that use it are skipped with -short.
func sharedCluster(t testing.TB) *kubetest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: the test needs a kube-apiserver")
	}
	shared.once.Do(startSharedCluster)
	require.NoError(t, shared.err, "start the shared test cluster")
	return shared.cluster
}

func startSharedCluster() {
	shared.started = true
	policy, err := filepath.Abs(filepath.Join("testdata", "cluster", "audit-policy.yaml"))
	if err != nil {
		shared.err = err
		return
	}
	shared.auditDir, err = os.MkdirTemp("", "wfevents-audit-")
	if err != nil {
		shared.err = fmt.Errorf("create the audit log directory: %w", err)
		return
	}
	shared.auditLog = filepath.Join(shared.auditDir, "audit.log")

	cluster, stop, err := kubetest.StartShared(kubetest.Options{APIServerFlags: []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + shared.auditLog,
	}})
	if err != nil {
		shared.err = err
		return
	}
	shared.cluster, shared.stop = cluster, stop
	fmt.Fprintf(os.Stderr, "shared kube-apiserver ready at %s, audit log in %s\n", cluster.URL, shared.auditLog)

	if err := kubetest.CreateArgoCRDs(context.Background(), cluster.AdminConfig()); err != nil {
		shared.err = fmt.Errorf("install the Argo CRDs: %w", err)
	}
}

// stopSharedCluster stops the shared cluster if a test started it. When
// failed is set it first prints the end of the component logs.
func stopSharedCluster(failed bool) error {
	if !shared.started {
		return nil
	}
	var err error
	if shared.cluster != nil {
		if failed {
			fmt.Fprintf(os.Stderr, "component logs of the shared test cluster:\n%s\n", shared.cluster.LogTail(60))
		}
		err = shared.stop()
	}
	if shared.auditDir != "" {
		if removeErr := os.RemoveAll(shared.auditDir); removeErr != nil && err == nil {
			err = removeErr
		}
	}
	return err
}

// testCluster is one test's access to the shared cluster as its admin.
type testCluster struct {
	*kubetest.Cluster
	kube    kubernetes.Interface
	dynamic dynamic.Interface
}

func newTestCluster(t testing.TB) *testCluster {
	t.Helper()
	cluster := sharedCluster(t)
	typed, err := kubernetes.NewForConfig(cluster.AdminConfig())
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cluster.AdminConfig())
	require.NoError(t, err)
	return &testCluster{Cluster: cluster, kube: typed, dynamic: dyn}
}

// startApp runs the cluster-mode app as the admin behind an httptest server
// and returns the app and the server's URL. Without cfg.Logger, its logs go
// to the test output.
func (c *testCluster) startApp(t testing.TB, cfg app.Config) (*app.App, string) {
	t.Helper()

	if cfg.Logger == nil {
		cfg.Logger = debugLogger(t.Output())
	}
	a, err := app.NewCluster(cfg, app.ClusterConfig{
		REST:   c.AdminConfig(),
		Review: kube.ReviewConfig{CacheTTL: reviewCacheTTL},
	})
	require.NoError(t, err)

	syncCtx, cancel := contextWithTimeout(t, clusterWait)
	defer cancel()
	synced := a.Start(syncCtx)
	t.Cleanup(a.Stop)
	require.True(t, synced, "template caches did not sync")

	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// createNamespace creates a namespace with a generated name that starts
// with the test's name, and returns the name. The namespace is not deleted,
// because without kube-controller-manager it would stay Terminating. The
// whole cluster is thrown away after the package's tests.
func (c *testCluster) createNamespace(t testing.TB) string {
	t.Helper()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())}}
	created, err := c.kube.CoreV1().Namespaces().Create(t.Context(), namespace, metav1.CreateOptions{})
	require.NoError(t, err)
	return created.Name
}

// namespacePrefix turns a test name into a short DNS label prefix ending in
// '-', for generateName.
func namespacePrefix(testName string) string {
	name := strings.ToLower(strings.TrimPrefix(testName, "TestCluster"))
	var b strings.Builder
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	prefix := b.String()
	if len(prefix) > 20 {
		prefix = prefix[:20]
	}
	if prefix == "" || prefix[0] < 'a' {
		prefix = "t" + prefix
	}
	return prefix + "-"
}

// Rules of the Roles the tests grant.
var (
	createWorkflows = rbacv1.PolicyRule{
		APIGroups: []string{kube.WorkflowsResource.Group},
		Resources: []string{kube.WorkflowsResource.Resource},
		Verbs:     []string{"create"},
	}
	getWorkflowTemplates = rbacv1.PolicyRule{
		APIGroups: []string{kube.WorkflowTemplatesResource.Group},
		Resources: []string{kube.WorkflowTemplatesResource.Resource},
		Verbs:     []string{"get"},
	}
)

// serviceAccount creates the ServiceAccount name in namespace, binds it in
// that namespace to a Role with rules (none means no binding), and returns
// a token for it from the TokenRequest API and its user name.
func (c *testCluster) serviceAccount(t testing.TB, namespace, name string, rules ...rbacv1.PolicyRule) (token, subject string) {
	t.Helper()
	ctx := t.Context()

	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, err := c.kube.CoreV1().ServiceAccounts(namespace).Create(ctx, account, metav1.CreateOptions{})
	require.NoError(t, err)
	subject = "system:serviceaccount:" + namespace + ":" + name

	if len(rules) > 0 {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
		_, err = c.kube.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{})
		require.NoError(t, err)
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		}
		_, err = c.kube.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	expiration := int64(3600)
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration}}
	response, err := c.kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, request, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, response.Status.Token)
	return response.Status.Token, subject
}

// grantClusterWide binds the ServiceAccount namespace/name to a ClusterRole
// with rules, and deletes both when the test ends.
func (c *testCluster) grantClusterWide(t testing.TB, namespace, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := t.Context()
	roleName := namespace + "-" + name

	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Rules: rules}
	_, err := c.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := c.kube.RbacV1().ClusterRoles().Delete(context.Background(), roleName, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete ClusterRole %s: %v", roleName, err)
		}
	})

	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: roleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName},
	}
	_, err = c.kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := c.kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), roleName, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete ClusterRoleBinding %s: %v", roleName, err)
		}
	})
}

// sender returns a token of a ServiceAccount that may create Workflows and
// read WorkflowTemplates in namespace, and its user name.
func (c *testCluster) sender(t testing.TB, namespace string) (token, subject string) {
	t.Helper()
	return c.serviceAccount(t, namespace, "sender", createWorkflows, getWorkflowTemplates)
}

// eventTemplate returns a WorkflowTemplate with the event expression and a
// single container step.
func eventTemplate(namespace, name, expression string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "WorkflowTemplate",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"event":      map[string]any{"expression": expression},
			"entrypoint": "main",
			"templates": []any{map[string]any{
				"name":      "main",
				"container": map[string]any{"image": "busybox:1.37", "args": []any{"true"}},
			}},
		},
	}}
}

// referenceTemplate returns the fixture event-consumer, the reference
// example of the events design, moved to namespace with its expression
// replaced.
func referenceTemplate(t testing.TB, namespace, expression string) *unstructured.Unstructured {
	t.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	require.NoError(t, err)
	for _, obj := range seed.Objects {
		if obj.GetKind() != "WorkflowTemplate" || obj.GetName() != "event-consumer" {
			continue
		}
		template := obj.DeepCopy()
		template.SetNamespace(namespace)
		template.SetUID("")
		template.SetResourceVersion("")
		require.NoError(t, unstructured.SetNestedField(template.Object, expression, "spec", "event", "expression"))
		return template
	}
	require.FailNow(t, "fixture WorkflowTemplate event-consumer not found")
	return nil
}

// createClusterTemplate creates the ClusterWorkflowTemplate and deletes it
// when the test ends.
func (c *testCluster) createClusterTemplate(t testing.TB, template *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	templates := c.dynamic.Resource(kube.ClusterWorkflowTemplatesResource)
	created, err := templates.Create(t.Context(), template, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		err := templates.Delete(context.Background(), created.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ClusterWorkflowTemplate %s: %v", created.GetName(), err)
		}
	})
	return created
}

// createTemplate creates the WorkflowTemplate and deletes it when the test
// ends, so apps of later tests do not load it.
func (c *testCluster) createTemplate(t testing.TB, template *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	templates := c.dynamic.Resource(kube.WorkflowTemplatesResource).Namespace(template.GetNamespace())
	created, err := templates.Create(t.Context(), template, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		err := templates.Delete(context.Background(), created.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete WorkflowTemplate %s/%s: %v", created.GetNamespace(), created.GetName(), err)
		}
	})
	return created
}

// setExpression changes the event expression of a WorkflowTemplate and
// returns the new resource version.
func (c *testCluster) setExpression(t testing.TB, namespace, name, expression string) string {
	t.Helper()
	templates := c.dynamic.Resource(kube.WorkflowTemplatesResource).Namespace(namespace)
	template, err := templates.Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, unstructured.SetNestedField(template.Object, expression, "spec", "event", "expression"))
	updated, err := templates.Update(t.Context(), template, metav1.UpdateOptions{})
	require.NoError(t, err)
	return updated.GetResourceVersion()
}

// listWorkflows returns the Workflows in namespace.
func (c *testCluster) listWorkflows(t testing.TB, namespace string) []unstructured.Unstructured {
	t.Helper()
	list, err := c.dynamic.Resource(kube.WorkflowsResource).Namespace(namespace).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	return list.Items
}

// waitForWorkflows waits until namespace has at least want Workflows, and
// requires exactly want.
func (c *testCluster) waitForWorkflows(t testing.TB, namespace string, want int) []unstructured.Unstructured {
	t.Helper()
	var workflows []unstructured.Unstructured
	require.EventuallyWithT(t, func(collect *assert.CollectT) {
		list, err := c.dynamic.Resource(kube.WorkflowsResource).Namespace(namespace).List(t.Context(), metav1.ListOptions{})
		require.NoError(collect, err)
		workflows = list.Items
		assert.GreaterOrEqual(collect, len(workflows), want, "Workflows in namespace %s", namespace)
	}, clusterWait, clusterTick)
	require.Len(t, workflows, want, "Workflows in namespace %s", namespace)
	return workflows
}

// warningEvents returns the Events with reason on the object name in
// namespace.
func (c *testCluster) warningEvents(t testing.TB, namespace, name, reason string) []corev1.Event {
	t.Helper()
	events, err := c.listEvents(t.Context(), namespace, name, reason)
	require.NoError(t, err)
	return events
}

// waitForWarningEvent waits for an Event with reason on the object name for
// which match is true, and returns it.
func (c *testCluster) waitForWarningEvent(t testing.TB, namespace, name, reason string, match func(corev1.Event) bool) corev1.Event {
	t.Helper()
	var found corev1.Event
	require.EventuallyWithT(t, func(collect *assert.CollectT) {
		events, err := c.listEvents(t.Context(), namespace, name, reason)
		require.NoError(collect, err)
		for _, event := range events {
			if match(event) {
				found = event
				return
			}
		}
		assert.Fail(collect, "no matching Event", "Events with reason %s on %s/%s: %v", reason, namespace, name, eventMessages(events))
	}, clusterWait, clusterTick)
	return found
}

func (c *testCluster) listEvents(ctx context.Context, namespace, name, reason string) ([]corev1.Event, error) {
	selector := fields.Set{"involvedObject.name": name, "reason": reason, "type": corev1.EventTypeWarning}
	list, err := c.kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func eventMessages(events []corev1.Event) []string {
	messages := make([]string, len(events))
	for i, event := range events {
		messages[i] = fmt.Sprintf("%s (resourceVersion %s, count %d)", event.Message, event.InvolvedObject.ResourceVersion, event.Count)
	}
	return messages
}

// waitForCatalog waits until the app's catalog contains the given resource
// version of a WorkflowTemplate, or no version of it when resourceVersion
// is empty.
func waitForCatalog(t testing.TB, a *app.App, namespace, name, resourceVersion string) {
	t.Helper()
	ref := model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: namespace, Name: name}
	require.Eventually(t, func() bool {
		for _, program := range a.Catalog.InScope(namespace, nil) {
			if program.Template.Ref == ref {
				return program.Template.ResourceVersion == resourceVersion
			}
		}
		return resourceVersion == ""
	}, clusterWait, clusterTick, "catalog never held version %q of %s", resourceVersion, ref)
}

// bearer returns request headers with the token and any extra pairs of
// header name and value.
func bearer(token string, extra ...string) map[string]string {
	headers := map[string]string{"Authorization": "Bearer " + token}
	for i := 0; i+1 < len(extra); i += 2 {
		headers[extra[i]] = extra[i+1]
	}
	return headers
}

func TestClusterServiceAccountCreatesWorkflow(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, subject := c.sender(t, namespace)
	expression := fmt.Sprintf(`metadata.claimSet.sub == %q && event.message != "" && metadata["x-argo-e2e"] == ["true"]`, subject)
	c.createTemplate(t, referenceTemplate(t, namespace, expression))
	var logs syncBuffer
	a, url := c.startApp(t, app.Config{Logger: debugLogger(io.MultiWriter(t.Output(), &logs))})

	// The reference example, sent the way curl -d sends it.
	status, body := postEvent(t, url+"/api/v1/events/"+namespace,
		bearer(token, "X-Argo-E2E", "true", "Content-Type", "application/x-www-form-urlencoded"),
		strings.NewReader(`{"message": "hello events"}`))
	require.Equal(t, http.StatusOK, status, body)
	eventID, _ := body["eventId"].(string)
	require.NotEmpty(t, eventID, "response %v has no eventId", body)

	workflows := c.waitForWorkflows(t, namespace, 1)
	waitForIdle(t, a)
	wf := workflows[0]
	assert.Regexp(t, `^event-consumer-[a-z2-7]{10}$`, wf.GetName(), "the name is derived from the event")

	templateRef, _, err := unstructured.NestedMap(wf.Object, "spec", "workflowTemplateRef")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"name": "event-consumer"}, templateRef)
	parameters, _, err := unstructured.NestedSlice(wf.Object, "spec", "arguments", "parameters")
	require.NoError(t, err)
	assert.Equal(t, []any{map[string]any{"name": "message", "value": "hello events"}}, parameters)

	labels := wf.GetLabels()
	assert.Equal(t, "event-consumer", labels[model.LabelWorkflowTemplate])
	assert.Equal(t, "system-serviceaccount-"+namespace+"-sender", labels[model.LabelCreator])
	assert.Equal(t, eventID, labels[model.LabelEventID])
	assert.NotContains(t, labels, model.LabelInstanceID)

	// The token is in neither the app's logs nor the Workflow.
	assert.Contains(t, logs.String(), eventID, "the app logged nothing about the event")
	assert.NotContains(t, logs.String(), token, "app logs contain the token")
	stored, err := json.Marshal(wf.Object)
	require.NoError(t, err)
	assert.NotContains(t, string(stored), token, "the Workflow contains the token")
}

func TestClusterRejectsInvalidToken(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	c.createTemplate(t, eventTemplate(namespace, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	const token = "not-a-kubernetes-token"
	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	assert.Equal(t, http.StatusUnauthorized, status, body)
	assert.EqualValues(t, model.CodeUnauthenticated, body["code"])
	assert.NotContains(t, body["message"], token)

	waitForIdle(t, a)
	assert.Empty(t, c.listWorkflows(t, namespace))
}

func TestClusterRejectsCallerWithoutRBAC(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, subject := c.serviceAccount(t, namespace, "no-rbac")
	c.createTemplate(t, eventTemplate(namespace, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{"message": "hello"}`))
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.EqualValues(t, model.CodePermissionDenied, body["code"])
	assert.Contains(t, body["message"], subject)

	waitForIdle(t, a)
	assert.Empty(t, c.listWorkflows(t, namespace))
}

func TestClusterRevokedAccessExpiresFromCache(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	c.createTemplate(t, eventTemplate(namespace, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	c.waitForWorkflows(t, namespace, 1)

	// Once the RoleBinding is gone and the cached review has expired, the
	// caller is rejected at admission.
	require.NoError(t, c.kube.RbacV1().RoleBindings(namespace).Delete(t.Context(), "sender", metav1.DeleteOptions{}))
	revoked := time.Now()
	require.EventuallyWithT(t, func(collect *assert.CollectT) {
		req, err := http.NewRequest(http.MethodPost, url+"/api/v1/events/"+namespace, strings.NewReader(`{}`))
		require.NoError(collect, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(collect, err)
		resp.Body.Close()
		assert.Equal(collect, http.StatusForbidden, resp.StatusCode)
	}, reviewCacheTTL+clusterWait, 100*time.Millisecond)
	t.Logf("rejected %s after the RoleBinding was deleted, with a review cache TTL of %s", time.Since(revoked).Round(time.Millisecond), reviewCacheTTL)
	waitForIdle(t, a)
}

func TestClusterNamespacedTokenStaysInNamespace(t *testing.T) {
	c := newTestCluster(t)
	home := c.createNamespace(t)
	other := c.createNamespace(t)
	token, _ := c.sender(t, home)
	c.createTemplate(t, eventTemplate(home, "any-event", "true"))
	c.createTemplate(t, eventTemplate(other, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	// The token works in its own namespace.
	status, body := postEvent(t, url+"/api/v1/events/"+home, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	c.waitForWorkflows(t, home, 1)

	cases := []struct {
		name string
		path string
	}{
		{name: "other namespace", path: "/api/v1/events/" + other},
		{name: "other namespace with discriminator", path: "/api/v1/events/" + other + "/github"},
		{name: "cluster-scoped", path: "/api/v1/events/"},
		{name: "cluster-scoped with discriminator", path: "/api/v1/events//github"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postEvent(t, url+tc.path, bearer(token), strings.NewReader(`{}`))
			assert.Equal(t, http.StatusForbidden, status, body)
			assert.EqualValues(t, model.CodePermissionDenied, body["code"])
		})
	}

	waitForIdle(t, a)
	assert.Empty(t, c.listWorkflows(t, other), "Workflows in the namespace the token has no access to")
	assert.Len(t, c.listWorkflows(t, home), 1, "Workflows in the token's namespace")
}

func TestClusterReportsCompileErrorOnce(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	broken := c.createTemplate(t, eventTemplate(namespace, "broken", `event.message ==`))
	c.createTemplate(t, eventTemplate(namespace, "working", "true"))
	a, url := c.startApp(t, app.Config{})

	// The compile error is reported when the template is loaded.
	firstVersion := broken.GetResourceVersion()
	onVersion := func(version string) func(corev1.Event) bool {
		return func(event corev1.Event) bool { return event.InvolvedObject.ResourceVersion == version }
	}
	event := c.waitForWarningEvent(t, namespace, "broken", kube.ReasonExpressionInvalid, onVersion(firstVersion))
	assert.Equal(t, "WorkflowTemplate", event.InvolvedObject.Kind)
	assert.Equal(t, broken.GetUID(), event.InvolvedObject.UID)
	assert.Contains(t, event.Message, "spec.event.expression")

	// The other template still fires for every event.
	const events = 3
	for range events {
		status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{"message": "hello"}`))
		require.Equal(t, http.StatusOK, status, body)
	}
	for _, wf := range c.waitForWorkflows(t, namespace, events) {
		assert.Equal(t, "working", wf.GetLabels()[model.LabelWorkflowTemplate])
	}
	waitForIdle(t, a)

	// A new version that still does not compile is reported once more. Its
	// message differs, so client-go's recorder writes a new Event instead
	// of counting a repeat of the first.
	secondVersion := c.setExpression(t, namespace, "broken", `event.message == (`)
	c.waitForWarningEvent(t, namespace, "broken", kube.ReasonExpressionInvalid, onVersion(secondVersion))

	byVersion := make(map[string][]corev1.Event)
	for _, event := range c.warningEvents(t, namespace, "broken", kube.ReasonExpressionInvalid) {
		byVersion[event.InvolvedObject.ResourceVersion] = append(byVersion[event.InvolvedObject.ResourceVersion], event)
	}
	for _, version := range []string{firstVersion, secondVersion} {
		if assert.Len(t, byVersion[version], 1, "Events for resource version %s", version) {
			assert.EqualValues(t, 1, byVersion[version][0].Count, "count of the Event for resource version %s", version)
		}
	}
	assert.Len(t, byVersion, 2, "Events by resource version: %v", byVersion)
}

func TestClusterReportsEvaluationError(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	c.createTemplate(t, eventTemplate(namespace, "failing", `event.a.b == 1`))
	c.createTemplate(t, eventTemplate(namespace, "working", "true"))
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	eventID, _ := body["eventId"].(string)
	require.NotEmpty(t, eventID, "response %v has no eventId", body)

	event := c.waitForWarningEvent(t, namespace, "failing", kube.ReasonExpressionInvalid, func(event corev1.Event) bool {
		return strings.Contains(event.Message, eventID)
	})
	assert.Contains(t, event.Message, "cannot fetch b from <nil>")

	workflows := c.waitForWorkflows(t, namespace, 1)
	waitForIdle(t, a)
	assert.Equal(t, "working", workflows[0].GetLabels()[model.LabelWorkflowTemplate])
}

func TestClusterPicksUpTemplateChanges(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	a, url := c.startApp(t, app.Config{})
	post := func(message string) {
		t.Helper()
		status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(fmt.Sprintf(`{"message": %q}`, message)))
		require.Equal(t, http.StatusOK, status, body)
		waitForIdle(t, a)
	}

	// A template created after the start fires.
	created := c.createTemplate(t, eventTemplate(namespace, "late", `event.message == "go"`))
	waitForCatalog(t, a, namespace, "late", created.GetResourceVersion())
	post("go")
	c.waitForWorkflows(t, namespace, 1)

	// Once changed, it fires for the new expression only.
	version := c.setExpression(t, namespace, "late", `event.message == "stop"`)
	waitForCatalog(t, a, namespace, "late", version)
	post("go")
	assert.Len(t, c.listWorkflows(t, namespace), 1, "Workflows after an event the changed template no longer matches")
	post("stop")
	c.waitForWorkflows(t, namespace, 2)

	// Once deleted, it fires no more.
	err := c.dynamic.Resource(kube.WorkflowTemplatesResource).Namespace(namespace).Delete(t.Context(), "late", metav1.DeleteOptions{})
	require.NoError(t, err)
	waitForCatalog(t, a, namespace, "late", "")
	post("stop")
	assert.Len(t, c.listWorkflows(t, namespace), 2, "Workflows after an event for the deleted template")
}

func TestClusterReadsTemplateAsCaller(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	// The caller may create Workflows but not read WorkflowTemplates.
	token, subject := c.serviceAccount(t, namespace, "no-template-read", createWorkflows)
	c.createTemplate(t, eventTemplate(namespace, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	eventID, _ := body["eventId"].(string)
	require.NotEmpty(t, eventID, "response %v has no eventId", body)

	event := c.waitForWarningEvent(t, namespace, "any-event", kube.ReasonDispatchFailed, func(event corev1.Event) bool {
		return strings.Contains(event.Message, eventID)
	})
	assert.Contains(t, event.Message, subject)
	assert.Contains(t, event.Message, "forbidden")

	waitForIdle(t, a)
	assert.Empty(t, c.listWorkflows(t, namespace))
}

// auditEvent contains the fields of a kube-apiserver audit log line
// (audit.k8s.io/v1 Event) that the tests check.
type auditEvent struct {
	Stage            string    `json:"stage"`
	Verb             string    `json:"verb"`
	User             userInfo  `json:"user"`
	ImpersonatedUser *userInfo `json:"impersonatedUser"`
	ObjectRef        struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		APIGroup  string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

type userInfo struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// workflowCreates returns the audit log's completed Workflow creates in
// namespace, matched by namespace alone. A line that is not JSON, such as
// one kube-apiserver is still writing, is an error.
func workflowCreates(namespace string) ([]auditEvent, error) {
	file, err := os.Open(shared.auditLog)
	if err != nil {
		return nil, err
	}
	defer file.Close()

	var creates []auditEvent
	scanner := bufio.NewScanner(file)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var event auditEvent
		if err := json.Unmarshal(scanner.Bytes(), &event); err != nil {
			return nil, fmt.Errorf("parse audit log line %q: %w", scanner.Text(), err)
		}
		ref := event.ObjectRef
		if event.Stage == "ResponseComplete" && event.Verb == "create" &&
			ref.APIGroup == kube.WorkflowsResource.Group && ref.Resource == kube.WorkflowsResource.Resource && ref.Namespace == namespace {
			creates = append(creates, event)
		}
	}
	return creates, scanner.Err()
}

func TestClusterCreatesWorkflowAsCaller(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, subject := c.sender(t, namespace)
	c.createTemplate(t, eventTemplate(namespace, "any-event", "true"))
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	c.waitForWorkflows(t, namespace, 1)
	waitForIdle(t, a)

	var creates []auditEvent
	require.EventuallyWithT(t, func(collect *assert.CollectT) {
		var err error
		creates, err = workflowCreates(namespace)
		require.NoError(collect, err)
		assert.NotEmpty(collect, creates, "Workflow creates in namespace %s in the audit log", namespace)
	}, clusterWait, clusterTick)
	require.Len(t, creates, 1)

	create := creates[0]
	assert.Equal(t, http.StatusCreated, create.ResponseStatus.Code)
	assert.Equal(t, kubetest.AdminUser, create.User.Username, "authenticated user")
	require.NotNil(t, create.ImpersonatedUser, "the create was not impersonated")
	assert.Equal(t, subject, create.ImpersonatedUser.Username, "impersonated user")
	assert.Contains(t, create.ImpersonatedUser.Groups, "system:serviceaccounts:"+namespace, "impersonated groups")
}

func TestClusterInstanceID(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	for name, instanceID := range map[string]string{"blue": "blue", "green": "green", "unlabelled": ""} {
		template := eventTemplate(namespace, name, "true")
		if instanceID != "" {
			template.SetLabels(map[string]string{model.LabelInstanceID: instanceID})
		}
		c.createTemplate(t, template)
	}
	a, url := c.startApp(t, app.Config{InstanceID: "blue"})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	workflows := c.waitForWorkflows(t, namespace, 1)
	waitForIdle(t, a)

	labels := workflows[0].GetLabels()
	assert.Equal(t, "blue", labels[model.LabelWorkflowTemplate])
	assert.Equal(t, "blue", labels[model.LabelInstanceID])
	assert.Len(t, c.listWorkflows(t, namespace), 1, "Workflows after the event was processed")
}

func TestClusterScopedEventReachesGrantedNamespaces(t *testing.T) {
	c := newTestCluster(t)
	home := c.createNamespace(t)
	second := c.createNamespace(t)
	token, subject := c.serviceAccount(t, home, "cluster-sender")
	c.grantClusterWide(t, home, "cluster-sender", createWorkflows, getWorkflowTemplates)
	expression := fmt.Sprintf(`metadata.claimSet.sub == %q && namespace == ""`, subject)
	for _, namespace := range []string{home, second} {
		c.createTemplate(t, eventTemplate(namespace, "any-namespace", expression))
	}
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/", bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	for _, namespace := range []string{home, second} {
		workflows := c.waitForWorkflows(t, namespace, 1)
		assert.Equal(t, "any-namespace", workflows[0].GetLabels()[model.LabelWorkflowTemplate], "Workflow in namespace %s", namespace)
	}
	waitForIdle(t, a)
}

func TestClusterTemplateRunsInEventNamespace(t *testing.T) {
	c := newTestCluster(t)
	namespace := c.createNamespace(t)
	token, _ := c.sender(t, namespace)
	c.grantClusterWide(t, namespace, "sender", rbacv1.PolicyRule{
		APIGroups: []string{kube.ClusterWorkflowTemplatesResource.Group},
		Resources: []string{kube.ClusterWorkflowTemplatesResource.Resource},
		Verbs:     []string{"get"},
	})
	// The name and the expression keep the template to this test, because
	// every app in the package loads cluster templates.
	template := eventTemplate("", namespace+"-cluster", fmt.Sprintf("namespace == %q", namespace))
	template.SetKind("ClusterWorkflowTemplate")
	c.createClusterTemplate(t, template)
	a, url := c.startApp(t, app.Config{})

	status, body := postEvent(t, url+"/api/v1/events/"+namespace, bearer(token), strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	workflows := c.waitForWorkflows(t, namespace, 1)
	waitForIdle(t, a)

	wf := workflows[0]
	templateRef, _, err := unstructured.NestedMap(wf.Object, "spec", "workflowTemplateRef")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"name": template.GetName(), "clusterScope": true}, templateRef)
	assert.Equal(t, template.GetName(), wf.GetLabels()[model.LabelClusterWorkflowTemplate])
	assert.NotContains(t, wf.GetLabels(), model.LabelWorkflowTemplate)
}
