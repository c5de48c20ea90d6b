package kubetest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Tokens of users that have no RBAC bindings, so every write is forbidden.
const (
	aliceToken = "alice-token"
	bobToken   = "bob-token"
)

var testTokens = []StaticToken{
	{Token: aliceToken, User: "alice", UID: "alice-uid", Groups: []string{"team-a", "developers"}},
	{Token: bobToken, User: "bob"},
}

// shared is the cluster that TestMain starts for the tests that do not
// start their own.
var shared *Cluster

func TestMain(m *testing.M) {
	os.Exit(RunShared(m, Options{Tokens: testTokens}, func(c *Cluster) error {
		shared = c
		return CreateArgoCRDs(context.Background(), c.AdminConfig())
	}))
}

var (
	crdGVR      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	workflowGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"}
	argoGVRs    = []schema.GroupVersionResource{
		workflowGVR,
		{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflowtemplates"},
		{Group: "argoproj.io", Version: "v1alpha1", Resource: "clusterworkflowtemplates"},
		{Group: "argoproj.io", Version: "v1alpha1", Resource: "workfloweventbindings"},
	}
)

func newWorkflow(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Workflow",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"entrypoint": "main",
			"templates":  []any{map[string]any{"name": "main", "container": map[string]any{"image": "busybox"}}},
		},
	}}
}

func dynamicClient(t *testing.T, c *Cluster, token string) dynamic.Interface {
	t.Helper()
	client, err := dynamic.NewForConfig(c.ConfigForToken(token))
	if err != nil {
		t.Fatalf("create a dynamic client: %v", err)
	}
	return client
}

// TestStartWorkflowCRD starts its own cluster, so it also covers Start's
// cleanup: after the subtest the processes must be gone and the directory
// removed.
func TestStartWorkflowCRD(t *testing.T) {
	var cluster *Cluster
	t.Run("cluster", func(t *testing.T) {
		started := time.Now()
		cluster = StartWithTokens(t, testTokens...)
		t.Logf("cluster ready in %s", time.Since(started).Round(time.Millisecond))

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin := dynamicClient(t, cluster, cluster.AdminToken)

		var crd unstructured.Unstructured
		if err := json.Unmarshal(readCRD(t, "workflows.argoproj.io.json"), &crd.Object); err != nil {
			t.Fatalf("parse the workflows CRD: %v", err)
		}
		if _, err := admin.Resource(crdGVR).Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD workflows.argoproj.io: %v", err)
		}
		waitCRDEstablished(ctx, t, admin, "workflows.argoproj.io")

		created, err := createWorkflowWhenServed(ctx, admin, newWorkflow("smoke"))
		if err != nil {
			t.Fatalf("create workflow default/smoke as admin: %v", err)
		}
		if created.GetUID() == "" {
			t.Errorf("created workflow has no UID: %v", created.Object)
		}
		entrypoint, _, _ := unstructured.NestedString(created.Object, "spec", "entrypoint")
		if entrypoint != "main" {
			t.Errorf("created workflow spec.entrypoint = %q, want %q (preserve-unknown-fields lost the spec)", entrypoint, "main")
		}

		alice := dynamicClient(t, cluster, aliceToken)
		_, err = alice.Resource(workflowGVR).Namespace("default").Create(ctx, newWorkflow("by-alice"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create workflow as alice without RBAC: error = %v, want Forbidden", err)
		}

		_, err = dynamicClient(t, cluster, "not-a-token").Resource(workflowGVR).Namespace("default").List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("list workflows with an unknown token: error = %v, want Unauthorized", err)
		}
	})
	if cluster == nil {
		return
	}

	for _, p := range cluster.processes {
		select {
		case <-p.done:
		default:
			t.Errorf("%s (pid %d) still running after the test's cleanup", p.name, p.cmd.Process.Pid)
		}
	}
	if _, err := os.Stat(cluster.Dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after the test's cleanup (stat error %v)", cluster.Dir, err)
	}
}

func readCRD(t *testing.T, name string) []byte {
	t.Helper()
	data, err := argoCRDFiles.ReadFile("testdata/crds/" + name)
	if err != nil {
		t.Fatalf("read CRD %s: %v", name, err)
	}
	return data
}

func waitCRDEstablished(ctx context.Context, t *testing.T, client dynamic.Interface, name string) {
	t.Helper()
	err := poll(ctx, "CRD "+name+" established", func() (bool, error) {
		crd, err := client.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conditions {
			cond, _ := c.(map[string]any)
			if cond["type"] == "Established" && cond["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// createWorkflowWhenServed retries the create while kube-apiserver returns
// NotFound, because an established CRD can take a moment to be served.
func createWorkflowWhenServed(ctx context.Context, client dynamic.Interface, wf *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	var created *unstructured.Unstructured
	err := poll(ctx, "workflow create", func() (bool, error) {
		var err error
		created, err = client.Resource(workflowGVR).Namespace(wf.GetNamespace()).Create(ctx, wf, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) {
			return false, err
		}
		return true, err
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

func TestSharedArgoCRDsServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := dynamicClient(t, shared, shared.AdminToken)

	for _, gvr := range argoGVRs {
		if _, err := admin.Resource(gvr).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list %s as admin: %v", gvr.Resource, err)
		}
	}
}

func TestSharedStaticTokensForbidden(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, token := range []string{aliceToken, bobToken} {
		client := dynamicClient(t, shared, token)
		_, err := client.Resource(workflowGVR).Namespace("default").Create(ctx, newWorkflow("forbidden"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create workflow with token %q: error = %v, want Forbidden", token, err)
		}
	}
}

func TestSharedAdminCreatesWorkflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := dynamicClient(t, shared, shared.AdminToken)

	if _, err := admin.Resource(workflowGVR).Namespace("default").Create(ctx, newWorkflow("shared"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create workflow default/shared as admin: %v", err)
	}
	got, err := admin.Resource(workflowGVR).Namespace("default").Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get workflow default/shared as admin: %v", err)
	}
	if got.GetName() != "shared" {
		t.Errorf("workflow name = %q, want %q", got.GetName(), "shared")
	}
}

func TestFindBinariesMissing(t *testing.T) {
	t.Setenv(BinDirEnv, t.TempDir())

	_, err := findBinaries()
	if err == nil {
		t.Fatal("findBinaries in an empty directory returned no error")
	}
	if !strings.Contains(err.Error(), "make kube-binaries") {
		t.Errorf("error %q does not tell to run make kube-binaries", err)
	}
}

func TestTokenFileRejectsInvalid(t *testing.T) {
	tests := []struct {
		name   string
		tokens []StaticToken
		want   string
	}{
		{"empty token", []StaticToken{{User: "carol"}}, "must not be empty"},
		{"empty user", []StaticToken{{Token: "t"}}, "must not be empty"},
		{"comma in group", []StaticToken{{Token: "t", User: "carol", Groups: []string{"a,b"}}}, "no comma"},
		{"duplicate token", []StaticToken{{Token: "t", User: "carol"}, {Token: "t", User: "dave"}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokenFile("admin", tt.tokens)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("tokenFile error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTokenFileFormat(t *testing.T) {
	got, err := tokenFile("admin", testTokens)
	if err != nil {
		t.Fatalf("tokenFile: %v", err)
	}
	want := "admin," + AdminUser + ",,system:masters\n" +
		"alice-token,alice,alice-uid,\"team-a,developers\"\n" +
		"bob-token,bob,\n"
	if string(got) != want {
		t.Errorf("tokenFile =\n%s\nwant\n%s", got, want)
	}
}
