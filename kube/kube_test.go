package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/wfevents/wfevents/model"
)

const templateYAML = `
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: build
  namespace: argo
  uid: uid-1
  resourceVersion: "7"
  labels:
    team: a
spec:
  event:
    expression: event.kind == "push"
  workflowMetadata:
    labels: {tier: ci}
    annotations: {owner: team-a}
  arguments:
    parameters:
      - name: sha
        valueFrom:
          expression: event.sha
      - name: fixed
        value: "1"
      - name: fallback
        default: none
        valueFrom:
          expression: event.missing
`

func objectFromYAML(t testing.TB, text string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(text), &obj.Object))
	return obj
}

func TestTemplateFromObject(t *testing.T) {
	got, err := TemplateFromObject(objectFromYAML(t, templateYAML))
	require.NoError(t, err)

	fixed, fallback := "1", "none"
	want := model.Template{
		Ref:             model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: "build"},
		UID:             "uid-1",
		ResourceVersion: "7",
		Labels:          map[string]string{"team": "a"},
		Expression:      `event.kind == "push"`,
		Parameters: []model.Parameter{
			{Name: "sha", Expression: "event.sha"},
			{Name: "fixed", Value: &fixed},
			{Name: "fallback", Default: &fallback, Expression: "event.missing"},
		},
		WorkflowMetadata: model.Metadata{
			Labels:      map[string]string{"tier": "ci"},
			Annotations: map[string]string{"owner": "team-a"},
		},
	}
	assert.Equal(t, want, got)
}

func TestTemplateParameterNumberValue(t *testing.T) {
	obj := objectFromYAML(t, "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: x, namespace: argo}\nspec: {arguments: {parameters: [{name: replicas, value: 3}, {name: ratio, default: 0.5}, {name: dry, value: true}]}}\n")

	got, err := TemplateFromObject(obj)

	require.NoError(t, err)
	require.Len(t, got.Parameters, 3)
	assert.Equal(t, "3", *got.Parameters[0].Value)
	assert.Equal(t, "0.5", *got.Parameters[1].Default)
	assert.Equal(t, "true", *got.Parameters[2].Value)
}

func TestTemplateFromObjectWrongTypes(t *testing.T) {
	cases := []struct {
		name      string
		spec      string
		wantField string
	}{
		{name: "expression not a string", spec: "event: {expression: [1]}", wantField: "spec.event.expression"},
		{name: "parameters not a list", spec: "arguments: {parameters: {a: b}}", wantField: "spec.arguments.parameters"},
		{name: "parameter not an object", spec: "arguments: {parameters: [x]}", wantField: "spec.arguments.parameters[0]"},
		{name: "labels not strings", spec: "workflowMetadata: {labels: {a: [1]}}", wantField: "spec.workflowMetadata.labels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := objectFromYAML(t, "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: x, namespace: argo}\nspec: {"+tc.spec+"}\n")

			_, err := TemplateFromObject(obj)

			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantField)
			assert.Contains(t, err.Error(), "WorkflowTemplate/argo/x")
		})
	}
}

func TestWorkflowObjectRoundTrip(t *testing.T) {
	wf := model.Workflow{
		Namespace:    "team-a",
		GenerateName: "shared-",
		Labels:       map[string]string{model.LabelEventID: "e1"},
		Annotations:  map[string]string{"owner": "team-a"},
		TemplateRef:  model.TemplateRef{Name: "shared", ClusterScope: true},
		Parameters:   []model.ParameterValue{{Name: "a", Value: `{"x":1}`}, {Name: "b", Value: ""}},
	}

	obj := WorkflowToObject(wf)

	assert.Equal(t, "argoproj.io/v1alpha1", obj.GetAPIVersion())
	assert.Equal(t, "Workflow", obj.GetKind())
	assert.Empty(t, obj.GetName(), "name is left to the API server")
	clusterScope, _, _ := unstructured.NestedBool(obj.Object, "spec", "workflowTemplateRef", "clusterScope")
	assert.True(t, clusterScope)
	assert.Equal(t, wf, WorkflowFromObject(obj))
}

func TestClientCreateGeneratesName(t *testing.T) {
	dyn := NewFakeDynamicClient(objectFromYAML(t, templateYAML))
	client := NewClient(dyn)

	created, err := readAndCreate(t, client, model.Identity{Subject: "admin"}, model.Workflow{Namespace: "argo", GenerateName: "build-", TemplateRef: model.TemplateRef{Name: "build"}})
	require.NoError(t, err)

	assert.Regexp(t, `^build-[a-z0-9]{5}$`, created.Name)
	items, err := client.ListWorkflowObjects(t.Context(), "argo")
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, created.Name, (&unstructured.Unstructured{Object: items[0]}).GetName())
}

func TestClassifyRetryAfter(t *testing.T) {
	err := classify("create workflow", apierrors.NewTooManyRequests("slow down", 7))

	apiErr, ok := errors.AsType[*model.Error](err)
	require.True(t, ok)
	assert.Equal(t, 7*time.Second, apiErr.RetryAfter)
}

func TestClassifyMessage(t *testing.T) {
	exists := apierrors.NewAlreadyExists(schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}, "pr-2")

	assert.Equal(t, `create workflow failed: workflows.argoproj.io "pr-2" already exists`, model.ErrorMessage(classify("create workflow", exists)),
		"the API server's message tells the sender what to fix")
	assert.Equal(t, "create workflow failed", model.ErrorMessage(classify("create workflow", errors.New("dial tcp 10.0.0.1:6443: connection refused"))),
		"other causes stay in the log")
	assert.Equal(t, "create workflow timed out", model.ErrorMessage(classify("create workflow", context.DeadlineExceeded)))
}

func TestClientCreateNeedsTemplate(t *testing.T) {
	dyn := NewFakeDynamicClient()
	client := NewClient(dyn)

	_, err := readAndCreate(t, client, model.Identity{Subject: "admin"}, model.Workflow{Namespace: "argo", GenerateName: "gone-", TemplateRef: model.TemplateRef{Name: "gone"}})

	require.Error(t, err)
	assert.Equal(t, model.CodeNotFound, model.ErrorCode(err))
	assert.Contains(t, err.Error(), `read workflowtemplate "gone" as "admin"`)
	for _, action := range dyn.Actions() {
		assert.NotEqual(t, "create", action.GetVerb(), "nothing is created without the template")
	}
}

func TestClassify(t *testing.T) {
	resource := schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}
	cases := []struct {
		name string
		err  error
		want model.Code
	}{
		{name: "too many requests", err: apierrors.NewTooManyRequests("slow down", 1), want: model.CodeUnavailable},
		{name: "service unavailable", err: apierrors.NewServiceUnavailable("down"), want: model.CodeUnavailable},
		{name: "forbidden", err: apierrors.NewForbidden(resource, "x", errors.New("no")), want: model.CodePermissionDenied},
		{name: "not found", err: apierrors.NewNotFound(resource, "x"), want: model.CodeNotFound},
		{name: "invalid", err: apierrors.NewInvalid(schema.GroupKind{Group: "argoproj.io", Kind: "Workflow"}, "x", nil), want: model.CodeInvalid},
		{name: "server timeout", err: apierrors.NewTimeoutError("slow", 1), want: model.CodeUnavailable},
		{name: "internal", err: apierrors.NewInternalError(errors.New("boom")), want: model.CodeUnavailable},
		{name: "conflict", err: apierrors.NewConflict(resource, "x", errors.New("changed")), want: model.CodeUnavailable},
		{name: "connection refused", err: fmt.Errorf("post: %w", syscall.ECONNREFUSED), want: model.CodeUnavailable},
		{name: "other", err: errors.New("unexpected"), want: model.CodeInternal},
		{name: "already exists", err: apierrors.NewAlreadyExists(schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}, "pr-2"), want: model.CodeAlreadyExists},
		{name: "deadline", err: fmt.Errorf("post: %w", context.DeadlineExceeded), want: model.CodeDeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("create workflow", tc.err)

			assert.Equal(t, tc.want, model.ErrorCode(err))
			assert.ErrorIs(t, err, tc.err)
		})
	}
}

// recordingSink records what the watcher sends.
type recordingSink struct {
	mu       sync.Mutex
	upserted map[model.ResourceRef]model.Template
	deleted  []model.ResourceRef
}

func (s *recordingSink) Upsert(t model.Template) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upserted[t.Ref] = t
	return nil
}

func (s *recordingSink) UpsertBinding(b model.Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upserted[b.Ref] = model.Template{Ref: b.Ref, Expression: b.Selector}
	return nil
}

func (s *recordingSink) Delete(ref model.ResourceRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.upserted, ref)
	s.deleted = append(s.deleted, ref)
}

func (s *recordingSink) expressions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string)
	for ref, t := range s.upserted {
		out[ref.String()] = t.Expression
	}
	return out
}

func TestWatcherFeedsSink(t *testing.T) {
	template := objectFromYAML(t, templateYAML)
	cluster := objectFromYAML(t, "apiVersion: argoproj.io/v1alpha1\nkind: ClusterWorkflowTemplate\nmetadata: {name: shared}\nspec: {event: {expression: 'true'}}\n")
	dyn := NewFakeDynamicClient(template, cluster)
	sink := &recordingSink{upserted: make(map[model.ResourceRef]model.Template)}
	watcher, err := NewWatcher(dyn, WatcherConfig{Sink: sink, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	require.NoError(t, err)

	watcher.Start(t.Context())
	require.True(t, watcher.WaitForSync(t.Context()))
	assert.True(t, watcher.HasSynced())
	assert.Equal(t, map[string]string{
		"WorkflowTemplate/argo/build":    `event.kind == "push"`,
		"ClusterWorkflowTemplate/shared": "true",
	}, sink.expressions())

	// An update reaches the sink as the new version.
	changed := template.DeepCopy()
	require.NoError(t, unstructured.SetNestedField(changed.Object, "false", "spec", "event", "expression"))
	changed.SetResourceVersion("8")
	_, err = dyn.Resource(WorkflowTemplatesResource).Namespace("argo").Update(t.Context(), changed, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return sink.expressions()["WorkflowTemplate/argo/build"] == "false" },
		5*time.Second, 5*time.Millisecond)

	// A delete removes it.
	require.NoError(t, dyn.Resource(ClusterWorkflowTemplatesResource).Delete(t.Context(), "shared", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { _, ok := sink.expressions()["ClusterWorkflowTemplate/shared"]; return !ok },
		5*time.Second, 5*time.Millisecond)
}

func TestWatcherDropsUnreadableTemplate(t *testing.T) {
	broken := objectFromYAML(t, "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: broken, namespace: argo}\nspec: {event: {expression: [1]}}\n")
	dyn := NewFakeDynamicClient(broken)
	sink := &recordingSink{upserted: make(map[model.ResourceRef]model.Template)}
	watcher, err := NewWatcher(dyn, WatcherConfig{Sink: sink, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	require.NoError(t, err)

	watcher.Start(t.Context())
	require.True(t, watcher.WaitForSync(t.Context()))

	assert.Empty(t, sink.expressions())
	assert.Contains(t, sink.deleted, model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: "broken"})
}
