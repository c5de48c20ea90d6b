package workers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// fakeCreator records created Workflows and the caller of every call. Its
// create function, when set, decides each call's result.
type fakeCreator struct {
	mu      sync.Mutex
	created []model.Workflow
	callers []model.Identity
	calls   int
	create  func(call int, wf model.Workflow) error

	// templates are what GetTemplate returns, by name. A name not listed
	// returns a template with only its reference set.
	templates map[string]model.Template
	// getErr, when set, is the error of every GetTemplate call.
	getErr error
	reads  []model.TemplateRef
}

func (f *fakeCreator) GetTemplate(_ context.Context, _ model.Identity, namespace string, ref model.TemplateRef) (model.Template, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.reads = append(f.reads, ref)
	if f.getErr != nil {
		return model.Template{}, f.getErr
	}
	if t, ok := f.templates[ref.Name]; ok {
		return t, nil
	}
	if ref.ClusterScope {
		return model.Template{Ref: model.ResourceRef{Kind: model.KindClusterWorkflowTemplate, Name: ref.Name}}, nil
	}
	return model.Template{Ref: model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: namespace, Name: ref.Name}}, nil
}

func (f *fakeCreator) CreateWorkflow(_ context.Context, caller model.Identity, wf model.Workflow) (model.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.calls++
	f.callers = append(f.callers, caller)
	if f.create != nil {
		if err := f.create(f.calls, wf); err != nil {
			return model.Workflow{}, err
		}
	}
	if wf.Name == "" {
		wf.Name = wf.GenerateName + "abcde"
	}
	f.created = append(f.created, wf)
	return wf, nil
}

// GetWorkflow returns the created Workflow of that name.
func (f *fakeCreator) GetWorkflow(_ context.Context, namespace, name string) (model.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, wf := range f.created {
		if wf.Namespace == namespace && wf.Name == name {
			return wf, nil
		}
	}
	return model.Workflow{}, model.Errorf(model.CodeNotFound, "workflow %q not found", name)
}

func template(kind model.Kind, namespace, name, expression string, parameters ...model.Parameter) model.Template {
	return model.Template{
		Ref:             model.ResourceRef{Kind: kind, Namespace: namespace, Name: name},
		UID:             namespace + "/" + name,
		ResourceVersion: "1",
		Expression:      expression,
		Parameters:      parameters,
	}
}

func newCatalog(t testing.TB, templates ...model.Template) *matcher.Catalog {
	t.Helper()
	catalog := matcher.NewCatalog("", nil)
	for _, tmpl := range templates {
		require.NoError(t, catalog.Upsert(tmpl))
	}
	return catalog
}

func adminEvent(namespace string, payload any) model.Event {
	return model.Event{
		ID:        "event-1",
		Namespace: namespace,
		Payload:   payload,
		Caller:    model.Identity{Subject: "system:serviceaccount:argo:ci", AllNamespaces: true},
	}
}

func TestDispatchCreatesOnePerMatch(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "argo", "build", `event.kind == "push"`,
			model.Parameter{Name: "sha", Expression: "event.sha"}),
		template(model.KindWorkflowTemplate, "argo", "notify", `true`),
		template(model.KindWorkflowTemplate, "argo", "release", `event.kind == "release"`),
		template(model.KindWorkflowTemplate, "other", "build", `true`),
	)
	creator := &fakeCreator{}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", map[string]any{"kind": "push", "sha": "abc123"}), false)

	require.Len(t, outcomes, 3, "want the templates of namespace argo only")
	assert.True(t, outcomes[0].Matched)
	assert.True(t, outcomes[1].Matched)
	assert.False(t, outcomes[2].Matched)
	assert.Nil(t, outcomes[2].Workflow)
	require.Len(t, creator.created, 2)

	build := creator.created[0]
	assert.Equal(t, "argo", build.Namespace)
	assert.Equal(t, "build-", build.GenerateName)
	assert.Equal(t, model.TemplateRef{Name: "build"}, build.TemplateRef)
	assert.Equal(t, []model.ParameterValue{{Name: "sha", Value: "abc123"}}, build.Parameters)
	assert.Equal(t, map[string]string{
		model.LabelWorkflowTemplate: "build",
		model.LabelCreator:          "system-serviceaccount-argo-ci",
		model.LabelEventID:          "event-1",
	}, build.Labels)
	assert.Regexp(t, `^build-[a-z2-7]{10}$`, outcomes[0].Workflow.Name, "the name is derived from the event and the template")
	assert.Equal(t, outcomes[0].Workflow.Name, build.Name)
}

func TestDispatchFailureSkipsOnlyThatTemplate(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "argo", "a-not-bool", `event.kind`),
		template(model.KindWorkflowTemplate, "argo", "b-runtime-error", `event.missing.field == 1`),
		template(model.KindWorkflowTemplate, "argo", "c-bad-parameter", `true`,
			model.Parameter{Name: "p", Expression: "event.missing.field"}),
		template(model.KindWorkflowTemplate, "argo", "d-forbidden", `true`),
		template(model.KindWorkflowTemplate, "argo", "e-fine", `true`),
	)
	creator := &fakeCreator{create: func(_ int, wf model.Workflow) error {
		if wf.TemplateRef.Name == "d-forbidden" {
			return model.Errorf(model.CodePermissionDenied, "forbidden")
		}
		return nil
	}}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", map[string]any{"kind": "push"}), false)

	require.Len(t, outcomes, 5)
	for _, outcome := range outcomes[:4] {
		assert.Error(t, outcome.Err, outcome.Ref.String())
		assert.Nil(t, outcome.Workflow, outcome.Ref.String())
	}
	var evalErr *matcher.EvalError
	assert.ErrorAs(t, outcomes[0].Err, &evalErr)
	assert.ErrorContains(t, outcomes[0].Err, "want bool")
	assert.Equal(t, model.CodePermissionDenied, model.ErrorCode(outcomes[3].Err))
	assert.NoError(t, outcomes[4].Err)
	require.Len(t, creator.created, 1)
	assert.Equal(t, "e-fine-", creator.created[0].GenerateName)
	assert.Equal(t, 2, creator.calls, "a permanent error is not retried")
}

func TestDispatchClusterTemplate(t *testing.T) {
	catalog := newCatalog(t, template(model.KindClusterWorkflowTemplate, "", "shared", `namespace == "team-a"`))
	creator := &fakeCreator{}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, InstanceID: "prod"}

	dispatcher.Dispatch(t.Context(), adminEvent("team-a", nil), false)

	require.Len(t, creator.created, 1)
	wf := creator.created[0]
	assert.Equal(t, "team-a", wf.Namespace, "cluster template Workflows run in the event's namespace")
	assert.Equal(t, model.TemplateRef{Name: "shared", ClusterScope: true}, wf.TemplateRef)
	assert.Equal(t, "shared", wf.Labels[model.LabelClusterWorkflowTemplate])
	assert.NotContains(t, wf.Labels, model.LabelWorkflowTemplate)
	assert.Equal(t, "prod", wf.Labels[model.LabelInstanceID])
}

func TestDispatchClusterScopedEvent(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "team-a", "build", `true`),
		template(model.KindWorkflowTemplate, "team-b", "build", `true`),
		template(model.KindClusterWorkflowTemplate, "", "shared", `true`),
	)
	creator := &fakeCreator{}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator}
	ev := adminEvent("", nil)
	ev.Caller = model.Identity{Subject: "ops", Namespaces: []string{"team-b"}, AllNamespaces: false}

	outcomes := dispatcher.Dispatch(t.Context(), ev, false)

	require.Len(t, outcomes, 1, "only namespaces the caller may use are in scope")
	require.Len(t, creator.created, 1)
	assert.Equal(t, "team-b", creator.created[0].Namespace)
}

func TestDispatchDryRunCreatesNothing(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`,
		model.Parameter{Name: "n", Expression: "event.n"}))
	creator := &fakeCreator{}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", map[string]any{"n": int64(9007199254740993)}), true)

	require.Len(t, outcomes, 1)
	require.NotNil(t, outcomes[0].Workflow)
	assert.Equal(t, []model.ParameterValue{{Name: "n", Value: "9007199254740993"}}, outcomes[0].Workflow.Parameters)
	assert.Zero(t, creator.calls)
}

func TestDispatchRetriesTransientErrors(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	backoff := Backoff{Attempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond}

	cases := []struct {
		name        string
		failures    int
		wantCalls   int
		wantCreated int
	}{
		{name: "succeeds on third attempt", failures: 2, wantCalls: 3, wantCreated: 1},
		{name: "gives up after attempts", failures: 5, wantCalls: 3, wantCreated: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			creator := &fakeCreator{create: func(call int, _ model.Workflow) error {
				if call <= tc.failures {
					return &model.Error{Code: model.CodeUnavailable, Message: "too many requests", Err: errors.New("429")}
				}
				return nil
			}}
			dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Backoff: backoff}

			outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), false)

			require.Len(t, outcomes, 1)
			assert.Equal(t, tc.wantCalls, creator.calls)
			assert.Len(t, creator.created, tc.wantCreated)
			assert.Equal(t, tc.wantCreated == 0, outcomes[0].Err != nil, "error %v", outcomes[0].Err)
		})
	}
}

func TestDispatchRetryStopsWhenContextEnds(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	ctx, cancel := context.WithCancel(t.Context())
	creator := &fakeCreator{create: func(int, model.Workflow) error {
		cancel()
		return &model.Error{Code: model.CodeUnavailable, Message: "unavailable"}
	}}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Backoff: Backoff{Attempts: 10, Initial: time.Hour, Max: time.Hour}}

	outcomes := dispatcher.Dispatch(ctx, adminEvent("argo", nil), false)

	require.Len(t, outcomes, 1)
	assert.ErrorIs(t, outcomes[0].Err, context.Canceled)
	assert.Equal(t, 1, creator.calls)
}

func TestLabelValue(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{name: "plain", input: "admin", want: "admin"},
		{name: "service account", input: "system:serviceaccount:argo:github", want: "system-serviceaccount-argo-github"},
		{name: "email", input: "person1@example.invalid", want: "person1-example.invalid"},
		{name: "runs collapse", input: "a::@@b", want: "a-b"},
		{name: "edges trimmed", input: ":admin.", want: "admin"},
		{name: "long cut to 63", input: "x" + strings.Repeat("a", 80), want: "x" + strings.Repeat("a", 62)},
		{name: "empty", input: "", want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, LabelValue(tc.input))
		})
	}
}

func TestDispatchPassesCallerUnchanged(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "argo", "build", `true`),
		template(model.KindClusterWorkflowTemplate, "", "shared", `true`),
	)
	creator := &fakeCreator{create: func(call int, _ model.Workflow) error {
		if call == 1 {
			return &model.Error{Code: model.CodeUnavailable, Message: "too many requests"}
		}
		return nil
	}}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Backoff: Backoff{Attempts: 2, Initial: time.Millisecond, Max: time.Millisecond}}
	ev := adminEvent("argo", nil)
	ev.Caller = model.Identity{
		Subject:    "system:serviceaccount:argo:ci",
		UID:        "uid-ci",
		Groups:     []string{"system:serviceaccounts", "system:serviceaccounts:argo"},
		Namespaces: []string{"argo"},
	}

	outcomes := dispatcher.Dispatch(t.Context(), ev, false)

	require.Len(t, outcomes, 2)
	for _, outcome := range outcomes {
		assert.NoError(t, outcome.Err, outcome.Ref.String())
	}
	require.Len(t, creator.callers, 3, "one retry and two creates")
	for i, caller := range creator.callers {
		assert.Equal(t, ev.Caller, caller, "call %d", i+1)
	}
}

// failureReport is one call of fakeReporter.ReportFailure.
type failureReport struct {
	ref     model.ResourceRef
	eventID string
	err     error
}

// fakeReporter records every failure reported to it.
type fakeReporter struct {
	mu      sync.Mutex
	reports []failureReport
}

func (r *fakeReporter) ReportFailure(resource model.ObjectMeta, eventID string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, failureReport{ref: resource.Ref, eventID: eventID, err: err})
}

func TestProcessReportsEveryFailure(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "argo", "a-not-bool", `event.kind`),
		template(model.KindWorkflowTemplate, "argo", "b-forbidden", `true`),
		template(model.KindWorkflowTemplate, "argo", "c-fine", `true`),
		template(model.KindWorkflowTemplate, "argo", "d-no-match", `false`),
		template(model.KindClusterWorkflowTemplate, "", "e-bad-parameter", `true`,
			model.Parameter{Name: "p", Expression: "event.missing.field"}),
	)
	creator := &fakeCreator{create: func(_ int, wf model.Workflow) error {
		if wf.TemplateRef.Name == "b-forbidden" {
			return model.Errorf(model.CodePermissionDenied, "forbidden")
		}
		return nil
	}}
	reporter := &fakeReporter{}
	var logs syncBuffer
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Reporter: reporter, Logger: testLogger(t, &logs)}

	dispatcher.Process(t.Context(), adminEvent("argo", map[string]any{"kind": "push"}))

	require.Len(t, reporter.reports, 3)
	var refs []string
	for _, report := range reporter.reports {
		refs = append(refs, report.ref.String())
		assert.Equal(t, "event-1", report.eventID, report.ref.String())
		assert.Error(t, report.err, report.ref.String())
	}
	assert.Equal(t, []string{
		"WorkflowTemplate/argo/a-not-bool",
		"WorkflowTemplate/argo/b-forbidden",
		"ClusterWorkflowTemplate/e-bad-parameter",
	}, refs)
	var evalErr *matcher.EvalError
	assert.ErrorAs(t, reporter.reports[0].err, &evalErr)
	assert.Equal(t, model.CodePermissionDenied, model.ErrorCode(reporter.reports[1].err))
	assert.ErrorAs(t, reporter.reports[2].err, &evalErr)
	assert.Equal(t, 3, strings.Count(logs.String(), `msg="template failed for event"`))
	require.Len(t, creator.created, 1)
	assert.Equal(t, "c-fine-", creator.created[0].GenerateName)
}

// fakeAuthorizer returns the decision in allowed, or the error in failures,
// for each namespace and records every request.
type fakeAuthorizer struct {
	allowed  map[string]bool
	failures map[string]error

	mu        sync.Mutex
	requested []string
	callers   []model.Identity
}

func (a *fakeAuthorizer) MayCreateWorkflows(_ context.Context, caller model.Identity, namespace string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requested = append(a.requested, namespace)
	a.callers = append(a.callers, caller)
	if err := a.failures[namespace]; err != nil {
		return false, err
	}
	return a.allowed[namespace], nil
}

func TestDispatchAuthorizerFiltersNamespaces(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "team-a", "build", `true`),
		template(model.KindWorkflowTemplate, "team-b", "build", `true`),
		template(model.KindWorkflowTemplate, "team-c", "build", `true`),
		template(model.KindClusterWorkflowTemplate, "", "shared", `true`),
	)
	creator := &fakeCreator{}
	authorizer := &fakeAuthorizer{
		allowed:  map[string]bool{"team-a": true, "team-b": false, "team-c": true},
		failures: map[string]error{"team-c": errors.New("subject access review failed: 429")},
	}
	var logs syncBuffer
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Authorizer: authorizer, Logger: testLogger(t, &logs)}
	ev := adminEvent("", nil)
	ev.Caller = model.Identity{Subject: "system:serviceaccount:argo:ci", UID: "uid-ci", Groups: []string{"system:serviceaccounts"}}

	outcomes := dispatcher.Dispatch(t.Context(), ev, false)

	require.Len(t, outcomes, 1, "only team-a is in scope")
	assert.Equal(t, "WorkflowTemplate/team-a/build", outcomes[0].Ref.String())
	require.Len(t, creator.created, 1)
	assert.Equal(t, "team-a", creator.created[0].Namespace)

	requested := append([]string(nil), authorizer.requested...)
	slices.Sort(requested)
	assert.Equal(t, []string{"team-a", "team-b", "team-c"}, requested, "one request per namespace with templates")
	for _, caller := range authorizer.callers {
		assert.Equal(t, ev.Caller, caller)
	}

	log := logs.String()
	assert.Contains(t, log, `msg="authorization check failed; namespace skipped"`)
	assert.Contains(t, log, "namespace=team-c")
	assert.Contains(t, log, "event_id=event-1")
	assert.Contains(t, log, "subject access review failed: 429")
}

func TestDispatchNamespacedEventSkipsAuthorizer(t *testing.T) {
	catalog := newCatalog(t,
		template(model.KindWorkflowTemplate, "team-a", "build", `true`),
		template(model.KindClusterWorkflowTemplate, "", "shared", `true`),
	)
	creator := &fakeCreator{}
	authorizer := &fakeAuthorizer{}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Authorizer: authorizer}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("team-a", nil), false)

	assert.Len(t, outcomes, 2)
	assert.Len(t, creator.created, 2)
	assert.Empty(t, authorizer.requested, "admission already checked the event's namespace")
}

func TestDispatchNamesAreStablePerEvent(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	dispatcher := &Dispatcher{Templates: catalog, Cluster: &fakeCreator{}}

	first := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), true)
	again := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), true)
	other := adminEvent("argo", nil)
	other.ID = "event-2"
	second := dispatcher.Dispatch(t.Context(), other, true)

	require.Len(t, first, 1)
	require.NotNil(t, first[0].Workflow)
	assert.Equal(t, first[0].Workflow.Name, again[0].Workflow.Name, "the same event gets the same name")
	assert.NotEqual(t, first[0].Workflow.Name, second[0].Workflow.Name, "another event gets another name")
}

func TestDispatchRetriedCreateFindsItsWorkflow(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	creator := &fakeCreator{}
	// The first create reaches the cluster but its response is lost, and the
	// retry then finds the Workflow.
	creator.create = func(call int, wf model.Workflow) error {
		if call == 2 {
			return &model.Error{Code: model.CodeAlreadyExists, Message: "already exists"}
		}
		if call == 1 {
			creator.created = append(creator.created, wf)
			return &model.Error{Code: model.CodeUnavailable, Message: "timeout"}
		}
		return nil
	}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Backoff: Backoff{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond}}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), false)

	require.Len(t, outcomes, 1)
	require.NoError(t, outcomes[0].Err)
	assert.Len(t, creator.created, 1, "no second Workflow")
	assert.Equal(t, creator.created[0].Name, outcomes[0].Workflow.Name)
}

func TestDispatchNameClashIsConflict(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	creator := &fakeCreator{}
	creator.create = func(_ int, wf model.Workflow) error {
		taken := wf
		taken.Labels = map[string]string{model.LabelEventID: "another-event"}
		creator.created = append(creator.created, taken)
		return &model.Error{Code: model.CodeAlreadyExists, Message: "already exists"}
	}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), false)

	require.Len(t, outcomes, 1)
	require.Error(t, outcomes[0].Err)
	assert.Equal(t, model.CodeAlreadyExists, model.ErrorCode(outcomes[0].Err))
	assert.Contains(t, model.ErrorMessage(outcomes[0].Err), "created by another event")
}

func TestDispatchRetryGivesUpAtDeadline(t *testing.T) {
	catalog := newCatalog(t, template(model.KindWorkflowTemplate, "argo", "build", `true`))
	creator := &fakeCreator{create: func(int, model.Workflow) error {
		return &model.Error{Code: model.CodeUnavailable, Message: "slow down", RetryAfter: time.Hour}
	}}
	dispatcher := &Dispatcher{Templates: catalog, Cluster: creator, Backoff: Backoff{Attempts: 10, Initial: time.Millisecond, Max: time.Millisecond, Deadline: time.Minute}}

	outcomes := dispatcher.Dispatch(t.Context(), adminEvent("argo", nil), false)

	require.Len(t, outcomes, 1)
	require.Error(t, outcomes[0].Err)
	assert.Contains(t, outcomes[0].Err.Error(), "gave up retrying after 1m0s")
	assert.Equal(t, 1, creator.calls, "a Retry-After beyond the deadline is not waited for")
}

func TestJitterStaysInRange(t *testing.T) {
	for range 1000 {
		wait := jitter(100 * time.Millisecond)
		assert.GreaterOrEqual(t, wait, 50*time.Millisecond)
		assert.LessOrEqual(t, wait, 100*time.Millisecond)
	}
	assert.Zero(t, jitter(0))
}
