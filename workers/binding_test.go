package workers_test

import (
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/bindings")

// bindingHarness is a fake cluster seeded with testdata/bindings, the
// catalog an informer feeds from it, and a dispatcher on both.
type bindingHarness struct {
	cluster    *kube.Client
	fake       interface{ Actions() []k8stesting.Action }
	fakeClient *dynamicfake.FakeDynamicClient
	catalog    *matcher.Catalog
	dispatcher *workers.Dispatcher
}

func newBindingHarness(t testing.TB) *bindingHarness {
	t.Helper()

	data, err := os.ReadFile(filepath.Join("testdata", "bindings", "resources.yaml"))
	require.NoError(t, err)
	objects, err := fixtures.DecodeObjects(data)
	require.NoError(t, err)
	seed := make([]runtime.Object, len(objects))
	for i, obj := range objects {
		seed[i] = obj
	}
	fake := kube.NewFakeDynamicClient(seed...)

	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	catalog := matcher.NewCatalog("", logger)
	watcher, err := kube.NewWatcher(fake, kube.WatcherConfig{Sink: catalog, Logger: logger})
	require.NoError(t, err)
	watcher.Start(t.Context())
	require.True(t, watcher.WaitForSync(t.Context()))

	client := kube.NewClient(fake)
	return &bindingHarness{
		cluster:    client,
		fake:       fake,
		fakeClient: fake,
		catalog:    catalog,
		dispatcher: &workers.Dispatcher{
			Templates: catalog,
			Cluster:   client,
			Backoff:   workers.Backoff{Attempts: 1},
			Logger:    logger,
		},
	}
}

// pullRequestEvent is GitHub's pull_request delivery for an opened pull
// request, sent to namespace ci by a service account.
func pullRequestEvent(t testing.TB) model.Event {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "bindings", "pull_request-opened.json"))
	require.NoError(t, err)
	payload, err := matcher.DecodeJSON(body)
	require.NoError(t, err)
	return model.Event{
		ID:        "event-7",
		Namespace: "ci",
		Payload:   payload,
		Headers:   map[string][]string{"X-Github-Event": {"pull_request"}},
		Caller: model.Identity{
			Subject:           "system:serviceaccount:ci:github",
			Email:             "person1@example.invalid",
			PreferredUsername: "person-1",
			AllNamespaces:     true,
		},
	}
}

func TestBindingBehaviours(t *testing.T) {
	h := newBindingHarness(t)

	outcomes := h.dispatcher.Dispatch(t.Context(), pullRequestEvent(t), false)

	byName := make(map[string]workers.Outcome)
	for _, outcome := range outcomes {
		byName[outcome.Ref.Name] = outcome
	}

	// The binding whose selector does not compile is reported at load and
	// never evaluated.
	require.Len(t, h.catalog.Failing(), 1)
	failing := h.catalog.Failing()[0]
	assert.Equal(t, "broken-selector", failing.Ref.Name)
	assert.Equal(t, "spec.event.selector", failing.Field)
	assert.Contains(t, failing.Error(), "(1:17)", "the error gives the position")
	assert.NotContains(t, byName, "broken-selector")

	cases := []struct {
		name        string
		wantMatched bool
		wantCreated bool
		wantError   string
	}{
		{name: "always-lint", wantMatched: true, wantCreated: true},
		{name: "pr-opened", wantMatched: true, wantCreated: true},
		{name: "pr-number", wantMatched: true, wantCreated: true},
		{name: "missing-template", wantMatched: true, wantError: `read workflowtemplate "no-such-template"`},
		{name: "string-selector", wantError: "result is string, want bool"},
		{name: "no-submit", wantMatched: true},
		// The two templates have no event block, so only bindings start them.
	}
	require.Len(t, outcomes, len(cases), "one outcome per binding that compiled")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outcome, ok := byName[tc.name]
			require.True(t, ok, "no outcome")

			assert.Equal(t, tc.wantMatched, outcome.Matched)
			assert.Equal(t, tc.wantCreated, outcome.Workflow != nil)
			if tc.wantError == "" {
				assert.NoError(t, outcome.Err)
				return
			}
			require.Error(t, outcome.Err)
			assert.Contains(t, outcome.Err.Error(), tc.wantError)
		})
	}

	assertBindingGolden(t, "created.golden.json", createdWorkflows(h))
}

func TestBindingNameMustBeString(t *testing.T) {
	cases := []struct {
		name       string
		expression string
		wantType   string
	}{
		{name: "number", expression: `payload.number`, wantType: "int64"},
		{name: "float", expression: `payload.number / 2`, wantType: "float64"},
		{name: "bool", expression: `payload.pull_request.draft`, wantType: "bool"},
		{name: "map", expression: `payload.pull_request.head`, wantType: "map"},
		{name: "list", expression: `payload.pull_request.labels`, wantType: "list"},
		{name: "nil", expression: `payload.no_such_field`, wantType: "nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newBindingHarness(t)
			binding := model.Binding{
				Ref:             model.ResourceRef{Kind: model.KindWorkflowEventBinding, Namespace: "other", Name: "bad-name"},
				UID:             "uid-bad",
				ResourceVersion: "1",
				Selector:        "true",
				Submit: &model.Submit{
					TemplateRef: model.TemplateRef{Name: "build"},
					Metadata:    model.SubmitMetadata{Name: tc.expression},
				},
			}
			require.NoError(t, h.catalog.UpsertBinding(binding))
			ev := pullRequestEvent(t)
			ev.Namespace = "other"

			outcomes := h.dispatcher.Dispatch(t.Context(), ev, false)

			require.Len(t, outcomes, 1)
			require.Error(t, outcomes[0].Err)
			assert.Contains(t, outcomes[0].Err.Error(), "spec.submit.metadata.name")
			assert.Contains(t, outcomes[0].Err.Error(), "result is "+tc.wantType+", want string")
			assert.Empty(t, createdWorkflows(h))
		})
	}
}

// createdWorkflows returns the Workflow objects the fake cluster was asked
// to create, in order.
func createdWorkflows(h *bindingHarness) []map[string]any {
	var created []map[string]any
	for _, action := range h.fake.Actions() {
		create, ok := action.(k8stesting.CreateAction)
		if !ok || action.GetResource() != kube.WorkflowsResource {
			continue
		}
		created = append(created, create.GetObject().(*unstructured.Unstructured).Object)
	}
	return created
}

// assertBindingGolden compares value, as indented JSON, with
// testdata/bindings/name. With -update it rewrites the file instead.
func assertBindingGolden(t *testing.T, name string, value any) {
	t.Helper()

	got, err := json.MarshalIndent(value, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "bindings", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./workers -update to create the golden file")
	assert.Equal(t, string(want), string(got), "created Workflows differ from %s", path)
}

// soloBinding submits the template build of namespace ci from namespace
// solo for every event, so fault tests see exactly one Workflow per event.
func soloBinding() model.Binding {
	return model.Binding{
		Ref:             model.ResourceRef{Kind: model.KindWorkflowEventBinding, Namespace: "solo", Name: "always"},
		UID:             "uid-solo",
		ResourceVersion: "1",
		Selector:        "true",
		Submit:          &model.Submit{TemplateRef: model.TemplateRef{Name: "shared-lint", ClusterScope: true}},
	}
}
