package kube

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/model"
)

// serverToken is the bearer token of wfevents' own service account in the
// client tests.
const serverToken = "server-token-7d41"

// Paths of the Argo resources the client tests use.
const (
	templatePath        = "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflowtemplates/build"
	clusterTemplatePath = "/apis/argoproj.io/v1alpha1/clusterworkflowtemplates/shared"
	workflowsPath       = "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows"
)

// createdName is the name the fake API server gives every Workflow.
const createdName = "build-x7k2q"

// apiRequest is one request the fake API server received.
type apiRequest struct {
	method string
	path   string
	header http.Header
}

// fakeAPIServer plays the Kubernetes API server for the Argo resources. It
// records every request and responds to each with the error in failures for
// its method and path, or else with success.
type fakeAPIServer struct {
	failures map[string]*apierrors.StatusError // keyed by method and path, such as "GET /apis/..."

	mu       sync.Mutex
	requests []apiRequest
}

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, apiRequest{method: r.Method, path: r.URL.Path, header: r.Header.Clone()})
	s.mu.Unlock()

	if statusErr, ok := s.failures[r.Method+" "+r.URL.Path]; ok {
		status := statusErr.Status()
		status.Kind, status.APIVersion = "Status", "v1"
		writeJSON(w, int(status.Code), status)
		return
	}

	switch {
	case r.Method == http.MethodGet && (r.URL.Path == templatePath || r.URL.Path == clusterTemplatePath):
		writeJSON(w, http.StatusOK, map[string]any{
			"apiVersion": "argoproj.io/v1alpha1",
			"kind":       "WorkflowTemplate",
			"metadata":   map[string]any{"name": "build", "namespace": "team-a", "uid": "uid-1"},
		})
	case r.Method == http.MethodPost && r.URL.Path == workflowsPath:
		var wf map[string]any
		if err := json.Unmarshal(body, &wf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		metadata, _ := wf["metadata"].(map[string]any)
		metadata["name"] = createdName
		metadata["uid"] = "uid-wf"
		writeJSON(w, http.StatusCreated, wf)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(value)
}

func (s *fakeAPIServer) received() []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apiRequest(nil), s.requests...)
}

// newImpersonatingTestClient starts api behind httptest and returns a Client
// that impersonates callers against it with serverToken.
func newImpersonatingTestClient(t testing.TB, api *fakeAPIServer) *Client {
	t.Helper()
	server := httptest.NewServer(api)
	t.Cleanup(server.Close)

	client, err := NewImpersonatingClient(&rest.Config{Host: server.URL, BearerToken: serverToken})
	require.NoError(t, err)
	return client
}

// readAndCreate reads the Workflow's template and then creates the Workflow,
// as the dispatcher does, and returns the first error.
func readAndCreate(t testing.TB, client *Client, caller model.Identity, wf model.Workflow) (model.Workflow, error) {
	t.Helper()
	if _, err := client.GetTemplate(t.Context(), caller, wf.Namespace, wf.TemplateRef); err != nil {
		return model.Workflow{}, err
	}
	return client.CreateWorkflow(t.Context(), caller, wf)
}

var teamCaller = model.Identity{
	Subject: "system:serviceaccount:team-a:ci",
	UID:     "uid-ci",
	Groups:  []string{"system:serviceaccounts", "system:serviceaccounts:team-a"},
}

func TestImpersonatingClientCreates(t *testing.T) {
	cases := []struct {
		name             string
		templateRef      model.TemplateRef
		wantTemplatePath string
	}{
		{name: "workflow template", templateRef: model.TemplateRef{Name: "build"}, wantTemplatePath: templatePath},
		{name: "cluster workflow template", templateRef: model.TemplateRef{Name: "shared", ClusterScope: true}, wantTemplatePath: clusterTemplatePath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPIServer{}
			client := newImpersonatingTestClient(t, api)

			created, err := readAndCreate(t, client, teamCaller, model.Workflow{Namespace: "team-a", GenerateName: "build-", TemplateRef: tc.templateRef})
			require.NoError(t, err)

			assert.Equal(t, createdName, created.Name, "the name is the one the API server generated")
			requests := api.received()
			require.Len(t, requests, 2)
			assert.Equal(t, "GET "+tc.wantTemplatePath, requests[0].method+" "+requests[0].path, "the template is read first")
			assert.Equal(t, "POST "+workflowsPath, requests[1].method+" "+requests[1].path)
			for _, request := range requests {
				assert.Equal(t, []string{teamCaller.Subject}, request.header.Values("Impersonate-User"), request.path)
				assert.Equal(t, []string{teamCaller.UID}, request.header.Values("Impersonate-Uid"), request.path)
				assert.Equal(t, teamCaller.Groups, request.header.Values("Impersonate-Group"), request.path)
				assert.Equal(t, []string{"Bearer " + serverToken}, request.header.Values("Authorization"), request.path)
			}
		})
	}
}

func TestImpersonatingClientErrors(t *testing.T) {
	workflows := schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}
	templates := schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}
	cases := []struct {
		name      string
		failures  map[string]*apierrors.StatusError
		wantCode  model.Code
		wantPosts int
	}{
		{
			name:      "template forbidden",
			failures:  map[string]*apierrors.StatusError{"GET " + templatePath: apierrors.NewForbidden(templates, "build", errors.New("no get"))},
			wantCode:  model.CodePermissionDenied,
			wantPosts: 0,
		},
		{
			name:      "template not found",
			failures:  map[string]*apierrors.StatusError{"GET " + templatePath: apierrors.NewNotFound(templates, "build")},
			wantCode:  model.CodeNotFound,
			wantPosts: 0,
		},
		{
			name:      "create forbidden",
			failures:  map[string]*apierrors.StatusError{"POST " + workflowsPath: apierrors.NewForbidden(workflows, "", errors.New("no create"))},
			wantCode:  model.CodePermissionDenied,
			wantPosts: 1,
		},
		{
			name:      "create too many requests",
			failures:  map[string]*apierrors.StatusError{"POST " + workflowsPath: apierrors.NewTooManyRequests("slow down", 1)},
			wantCode:  model.CodeUnavailable,
			wantPosts: 1,
		},
		{
			name:      "create internal error",
			failures:  map[string]*apierrors.StatusError{"POST " + workflowsPath: apierrors.NewInternalError(errors.New("etcd unreachable"))},
			wantCode:  model.CodeUnavailable,
			wantPosts: 1,
		},
		{
			name:      "create conflict",
			failures:  map[string]*apierrors.StatusError{"POST " + workflowsPath: apierrors.NewConflict(workflows, "build-x7k2q", errors.New("exists"))},
			wantCode:  model.CodeUnavailable,
			wantPosts: 1,
		},
		{
			name:      "create invalid",
			failures:  map[string]*apierrors.StatusError{"POST " + workflowsPath: apierrors.NewInvalid(schema.GroupKind{Group: "argoproj.io", Kind: "Workflow"}, "", nil)},
			wantCode:  model.CodeInvalid,
			wantPosts: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPIServer{failures: tc.failures}
			client := newImpersonatingTestClient(t, api)

			_, err := readAndCreate(t, client, teamCaller, model.Workflow{Namespace: "team-a", GenerateName: "build-", TemplateRef: model.TemplateRef{Name: "build"}})

			require.Error(t, err)
			assert.Equal(t, tc.wantCode, model.ErrorCode(err))
			assert.Contains(t, err.Error(), teamCaller.Subject, "the error names the caller")
			posts := 0
			for _, request := range api.received() {
				if request.method == http.MethodPost {
					posts++
				}
			}
			assert.Equal(t, tc.wantPosts, posts)
		})
	}
}

func TestClientCreateErrorCodes(t *testing.T) {
	templates := schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}
	workflows := schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}
	cases := []struct {
		name     string
		verb     string
		resource string
		err      error
		wantCode model.Code
	}{
		{name: "too many requests", verb: "create", resource: "workflows", err: apierrors.NewTooManyRequests("slow down", 1), wantCode: model.CodeUnavailable},
		{name: "internal error", verb: "create", resource: "workflows", err: apierrors.NewInternalError(errors.New("boom")), wantCode: model.CodeUnavailable},
		{name: "conflict", verb: "create", resource: "workflows", err: apierrors.NewConflict(workflows, "build-x", errors.New("exists")), wantCode: model.CodeUnavailable},
		{name: "create forbidden", verb: "create", resource: "workflows", err: apierrors.NewForbidden(workflows, "", errors.New("no create")), wantCode: model.CodePermissionDenied},
		{name: "template forbidden", verb: "get", resource: "workflowtemplates", err: apierrors.NewForbidden(templates, "build", errors.New("no get")), wantCode: model.CodePermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dyn := NewFakeDynamicClient(objectFromYAML(t, templateYAML))
			dyn.PrependReactor(tc.verb, tc.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tc.err
			})
			client := NewClient(dyn)

			_, err := readAndCreate(t, client, model.Identity{Subject: "admin"}, model.Workflow{Namespace: "argo", GenerateName: "build-", TemplateRef: model.TemplateRef{Name: "build"}})

			require.Error(t, err)
			assert.Equal(t, tc.wantCode, model.ErrorCode(err))
			assert.ErrorIs(t, err, tc.err)
			list, err := dyn.Resource(WorkflowsResource).Namespace("argo").List(t.Context(), metav1.ListOptions{})
			require.NoError(t, err)
			assert.Empty(t, list.Items, "no Workflow is stored")
		})
	}
}

func TestImpersonatingClientNeedsSubject(t *testing.T) {
	api := &fakeAPIServer{}
	client := newImpersonatingTestClient(t, api)

	_, err := client.GetTemplate(t.Context(), model.Identity{}, "team-a", model.TemplateRef{Name: "build"})
	require.Error(t, err)
	_, err = client.CreateWorkflow(t.Context(), model.Identity{}, model.Workflow{Namespace: "team-a", GenerateName: "build-"})
	require.Error(t, err)

	assert.Empty(t, api.received(), "without a user name the request would run with the server's own permissions")
}

func TestClientCachesTemplateReadsPerCaller(t *testing.T) {
	dyn := NewFakeDynamicClient(objectFromYAML(t, templateYAML))
	forbidden := true
	dyn.PrependReactor("get", "workflowtemplates", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden {
			forbidden = false
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}, "build", errors.New("no get"))
		}
		return false, nil, nil
	})
	client := NewClient(dyn)
	client.CacheTemplateReads(time.Minute, 16)
	admin := model.Identity{Subject: "admin"}
	other := model.Identity{Subject: "admin", Groups: []string{"ops"}}
	ref := model.TemplateRef{Name: "build"}
	gets := func() int {
		count := 0
		for _, action := range dyn.Actions() {
			if action.GetVerb() == "get" && action.GetResource().Resource == "workflowtemplates" {
				count++
			}
		}
		return count
	}

	_, err := client.GetTemplate(t.Context(), admin, "argo", ref)
	require.Error(t, err)
	_, err = client.GetTemplate(t.Context(), admin, "argo", ref)
	require.NoError(t, err, "a failed read is not cached")
	assert.Equal(t, 2, gets())

	template, err := client.GetTemplate(t.Context(), admin, "argo", ref)
	require.NoError(t, err)
	assert.Equal(t, "build", template.Ref.Name)
	assert.Equal(t, 2, gets(), "the same caller reuses the read")

	_, err = client.GetTemplate(t.Context(), other, "argo", ref)
	require.NoError(t, err)
	assert.Equal(t, 3, gets(), "another identity reads again")
}
