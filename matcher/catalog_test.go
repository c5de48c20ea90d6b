package matcher

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/wfevents/wfevents/model"
)

// testLogger returns a logger that writes to the test output and to extra.
func testLogger(t testing.TB, extra ...io.Writer) *slog.Logger {
	t.Helper()
	w := io.MultiWriter(append([]io.Writer{t.Output()}, extra...)...)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func workflowTemplateRef(namespace, name string) model.ResourceRef {
	return model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: namespace, Name: name}
}

func clusterTemplateRef(name string) model.ResourceRef {
	return model.ResourceRef{Kind: model.KindClusterWorkflowTemplate, Name: name}
}

// newTemplate returns a template whose UID is derived from its name.
func newTemplate(ref model.ResourceRef, resourceVersion, expression string) model.Template {
	return model.Template{
		Ref:             ref,
		UID:             "uid-" + ref.Name,
		ResourceVersion: resourceVersion,
		Expression:      expression,
	}
}

// withInstanceID returns t labelled with the instance ID label.
func withInstanceID(t model.Template, instanceID string) model.Template {
	t.Labels = map[string]string{model.LabelInstanceID: instanceID, "app": "demo"}
	return t
}

func allowAll(string) bool { return true }

func allowNone(string) bool { return false }

// refsOf returns the resources of programs, in order.
func refsOf(programs []*Program) []model.ResourceRef {
	refs := make([]model.ResourceRef, 0, len(programs))
	for _, program := range programs {
		refs = append(refs, program.Template.Ref)
	}
	return refs
}

func failingRefs(errs []*CompileError) []model.ResourceRef {
	refs := make([]model.ResourceRef, 0, len(errs))
	for _, err := range errs {
		refs = append(refs, err.Ref)
	}
	return refs
}

// onlyProgram returns the single program in scope for namespace argo.
func onlyProgram(t testing.TB, c *Catalog) *Program {
	t.Helper()
	programs := c.InScope("argo", allowNone)
	require.Len(t, programs, 1)
	return programs[0]
}

func TestCatalogCompilesOncePerVersion(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	ref := workflowTemplateRef("argo", "a")

	require.NoError(t, c.Upsert(newTemplate(ref, "1", "true")))
	first := onlyProgram(t, c)
	assert.Equal(t, "true", first.Template.Expression)

	// The same UID and resource version is not compiled again, so a changed
	// or even invalid expression under that version is ignored.
	require.NoError(t, c.Upsert(newTemplate(ref, "1", "false")))
	assert.Same(t, first, onlyProgram(t, c), "same version with another expression")
	require.NoError(t, c.Upsert(newTemplate(ref, "1", "event ==")))
	assert.Same(t, first, onlyProgram(t, c), "same version with an invalid expression")
	assert.Empty(t, c.Failing())

	require.NoError(t, c.Upsert(newTemplate(ref, "2", "false")))
	second := onlyProgram(t, c)
	assert.NotSame(t, first, second, "new resource version")
	assert.Equal(t, "false", second.Template.Expression)
	matched, err := second.Match(NewEnv(model.Event{}))
	require.NoError(t, err)
	assert.False(t, matched)

	recreated := newTemplate(ref, "2", "true")
	recreated.UID = "uid-recreated"
	require.NoError(t, c.Upsert(recreated))
	third := onlyProgram(t, c)
	assert.NotSame(t, second, third, "same version with another UID")
	assert.Equal(t, "uid-recreated", third.Template.UID)
}

func TestCatalogEmptyResourceVersion(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	ref := workflowTemplateRef("argo", "a")

	require.NoError(t, c.Upsert(newTemplate(ref, "", "true")))
	first := onlyProgram(t, c)
	require.NoError(t, c.Upsert(newTemplate(ref, "", "false")))
	second := onlyProgram(t, c)

	assert.NotSame(t, first, second)
	assert.Equal(t, "false", second.Template.Expression)
}

func TestCatalogCompileError(t *testing.T) {
	var logs strings.Builder
	c := NewCatalog("", testLogger(t, &logs))
	ref := workflowTemplateRef("argo", "a")
	require.NoError(t, c.Upsert(newTemplate(ref, "1", "true")))

	err := c.Upsert(newTemplate(ref, "2", "event =="))

	var compileErr *CompileError
	require.ErrorAs(t, err, &compileErr)
	assert.Equal(t, ref, compileErr.Ref)
	assert.Equal(t, "spec.event.expression", compileErr.Field)
	assert.Equal(t, []*CompileError{compileErr}, c.Failing())
	assert.Empty(t, c.InScope("argo", allowNone), "failing version replaces the good one")
	assert.Empty(t, c.InScope("", allowAll), "failing version in cluster-scoped scope")
	assert.Contains(t, logs.String(), "expression does not compile")
	assert.Contains(t, logs.String(), "resource=WorkflowTemplate/argo/a")
	assert.Contains(t, logs.String(), "resource_version=2")

	// The same failing version, as an informer resync delivers it, is not
	// compiled or reported again, but stays failing.
	logs.Reset()
	assert.NoError(t, c.Upsert(newTemplate(ref, "2", "event ==")))
	assert.Len(t, c.Failing(), 1)
	assert.NotContains(t, logs.String(), "expression does not compile")

	require.NoError(t, c.Upsert(newTemplate(ref, "3", "true")))
	assert.Empty(t, c.Failing(), "after a version that compiles")
	assert.Equal(t, "3", onlyProgram(t, c).Template.ResourceVersion)
}

func TestCatalogFailingSorted(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	refs := []model.ResourceRef{
		workflowTemplateRef("team", "b"),
		clusterTemplateRef("z"),
		workflowTemplateRef("argo", "c"),
		clusterTemplateRef("a"),
	}
	for _, ref := range refs {
		require.Error(t, c.Upsert(newTemplate(ref, "1", "(")))
	}

	got := failingRefs(c.Failing())

	want := []model.ResourceRef{
		clusterTemplateRef("a"),
		clusterTemplateRef("z"),
		workflowTemplateRef("argo", "c"),
		workflowTemplateRef("team", "b"),
	}
	assert.Equal(t, want, got)
}

func TestCatalogWithoutExpression(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	good := workflowTemplateRef("argo", "good")
	failing := workflowTemplateRef("argo", "failing")
	withoutExpression := workflowTemplateRef("argo", "without-expression")
	require.NoError(t, c.Upsert(newTemplate(good, "1", "true")))
	require.Error(t, c.Upsert(newTemplate(failing, "1", "(")))

	require.NoError(t, c.Upsert(newTemplate(withoutExpression, "1", "")))
	require.NoError(t, c.Upsert(newTemplate(good, "2", "")))
	require.NoError(t, c.Upsert(newTemplate(failing, "2", "")))

	assert.Empty(t, c.InScope("argo", allowNone))
	assert.Empty(t, c.Failing())
}

func TestCatalogInstanceID(t *testing.T) {
	unlabelled := newTemplate(workflowTemplateRef("argo", "unlabelled"), "1", "true")
	labelledX := withInstanceID(newTemplate(workflowTemplateRef("argo", "x"), "1", "true"), "x")
	labelledY := withInstanceID(newTemplate(workflowTemplateRef("argo", "y"), "1", "true"), "y")
	clusterX := withInstanceID(newTemplate(clusterTemplateRef("cluster-x"), "1", "true"), "x")
	templates := []model.Template{unlabelled, labelledX, labelledY, clusterX}

	tests := []struct {
		name       string
		instanceID string
		wantRefs   []model.ResourceRef
	}{
		{name: "no instance ID", instanceID: "", wantRefs: []model.ResourceRef{unlabelled.Ref}},
		{name: "instance ID x", instanceID: "x", wantRefs: []model.ResourceRef{labelledX.Ref, clusterX.Ref}},
		{name: "unused instance ID", instanceID: "z", wantRefs: []model.ResourceRef{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCatalog(tt.instanceID, testLogger(t))
			for _, template := range templates {
				require.NoError(t, c.Upsert(template))
			}

			assert.Equal(t, tt.wantRefs, refsOf(c.InScope("argo", allowNone)))
		})
	}
}

// A resource relabelled to another instance leaves the catalog.
func TestCatalogInstanceIDRelabel(t *testing.T) {
	c := NewCatalog("x", testLogger(t))
	template := withInstanceID(newTemplate(workflowTemplateRef("argo", "a"), "1", "true"), "x")
	require.NoError(t, c.Upsert(template))
	require.Len(t, c.InScope("argo", allowNone), 1)

	relabelled := withInstanceID(newTemplate(template.Ref, "2", "true"), "y")
	require.NoError(t, c.Upsert(relabelled))

	assert.Empty(t, c.InScope("argo", allowNone))
}

// Argo uses a resource only when the label is absent if it has no instance
// ID, and a label with an empty value is still a label.
func TestCatalogEmptyInstanceIDLabel(t *testing.T) {

	c := NewCatalog("", testLogger(t))

	require.NoError(t, c.Upsert(withInstanceID(newTemplate(workflowTemplateRef("argo", "a"), "1", "true"), "")))

	assert.Empty(t, c.InScope("argo", allowNone))
}

func TestCatalogInScope(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	refs := []model.ResourceRef{
		clusterTemplateRef("c2"),
		workflowTemplateRef("team-b", "x"),
		workflowTemplateRef("argo", "b"),
		clusterTemplateRef("c1"),
		workflowTemplateRef("team-a", "a"),
		workflowTemplateRef("argo", "a"),
	}
	for _, ref := range refs {
		require.NoError(t, c.Upsert(newTemplate(ref, "1", "true")))
	}

	tests := []struct {
		name      string
		namespace string
		allowed   []string
		wantRefs  []model.ResourceRef
	}{
		{
			name:      "namespace with templates",
			namespace: "argo",
			wantRefs: []model.ResourceRef{
				workflowTemplateRef("argo", "a"),
				workflowTemplateRef("argo", "b"),
				clusterTemplateRef("c1"),
				clusterTemplateRef("c2"),
			},
		},
		{
			name:      "other namespace",
			namespace: "team-a",
			allowed:   []string{"argo"},
			wantRefs: []model.ResourceRef{
				workflowTemplateRef("team-a", "a"),
				clusterTemplateRef("c1"),
				clusterTemplateRef("c2"),
			},
		},
		{
			name:      "namespace without templates",
			namespace: "empty",
			wantRefs:  []model.ResourceRef{clusterTemplateRef("c1"), clusterTemplateRef("c2")},
		},
		{
			name:      "cluster-scoped event",
			namespace: "",
			allowed:   []string{"argo", "team-b", "missing"},
			wantRefs: []model.ResourceRef{
				workflowTemplateRef("argo", "a"),
				workflowTemplateRef("argo", "b"),
				workflowTemplateRef("team-b", "x"),
			},
		},
		{
			name:      "cluster-scoped event with every namespace",
			namespace: "",
			allowed:   []string{"argo", "team-a", "team-b"},
			wantRefs: []model.ResourceRef{
				workflowTemplateRef("argo", "a"),
				workflowTemplateRef("argo", "b"),
				workflowTemplateRef("team-a", "a"),
				workflowTemplateRef("team-b", "x"),
			},
		},
		{
			name:      "cluster-scoped event with no namespace",
			namespace: "",
			wantRefs:  []model.ResourceRef{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mayUse := func(namespace string) bool { return slices.Contains(tt.allowed, namespace) }

			got := c.InScope(tt.namespace, mayUse)

			assert.Equal(t, tt.wantRefs, refsOf(got))
		})
	}
}

func TestCatalogDelete(t *testing.T) {
	c := NewCatalog("", testLogger(t))
	kept := workflowTemplateRef("argo", "kept")
	deleted := workflowTemplateRef("argo", "deleted")
	failing := workflowTemplateRef("argo", "failing")
	cluster := clusterTemplateRef("cluster")
	require.NoError(t, c.Upsert(newTemplate(kept, "1", "true")))
	require.NoError(t, c.Upsert(newTemplate(deleted, "1", "true")))
	require.NoError(t, c.Upsert(newTemplate(cluster, "1", "true")))
	require.Error(t, c.Upsert(newTemplate(failing, "1", "(")))

	c.Delete(deleted)
	c.Delete(failing)
	c.Delete(cluster)
	c.Delete(workflowTemplateRef("argo", "unknown"))

	assert.Equal(t, []model.ResourceRef{kept}, refsOf(c.InScope("argo", allowNone)))
	assert.Empty(t, c.Failing())

	// A deleted version that comes back is compiled again.
	require.NoError(t, c.Upsert(newTemplate(deleted, "1", "true")))
	assert.Len(t, c.InScope("argo", allowNone), 2)
}

// Informer callbacks write while workers read. Run with -race.
func TestCatalogConcurrentUse(t *testing.T) {
	const (
		goroutines = 8
		iterations = 200
	)
	c := NewCatalog("", nil)
	refs := []model.ResourceRef{
		workflowTemplateRef("argo", "a"),
		workflowTemplateRef("argo", "b"),
		workflowTemplateRef("team", "a"),
		clusterTemplateRef("c"),
	}
	env := NewEnv(model.Event{Payload: map[string]any{"message": "hi"}})

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				ref := refs[(g+i)%len(refs)]
				version := fmt.Sprint(i % 3)
				switch i % 5 {
				case 0, 1:
					_ = c.Upsert(newTemplate(ref, version, `event.message == "hi"`))
				case 2:
					_ = c.Upsert(newTemplate(ref, version, "("))
				case 3:
					c.Delete(ref)
				default:
					for _, program := range c.InScope(ref.Namespace, allowAll) {
						_, _ = program.Match(env)
						_, _ = program.Parameters(env)
					}
					_ = c.Failing()
				}
			}
		})
	}
	wg.Wait()

	for _, ref := range refs {
		require.NoError(t, c.Upsert(newTemplate(ref, "final", `event.message == "hi"`)))
	}
	assert.Empty(t, c.Failing())
	assert.Len(t, c.InScope("argo", allowNone), 3)
	assert.Len(t, c.InScope("", allowAll), 3)
}

// catalogModel is the expected state of a Catalog: the template each
// resource was last compiled from, and the resources whose latest version
// does not compile.
type catalogModel struct {
	compiled map[model.ResourceRef]model.Template
	failing  map[model.ResourceRef]model.Template
}

// upsert applies t and reports whether Upsert must return an error: only when
// it compiles a version that fails, not when it skips a version it has seen.
func (m *catalogModel) upsert(t model.Template, instanceID string, compiles bool) (wantErr bool) {
	label, labelled := t.Labels[model.LabelInstanceID]
	sameInstance := !labelled
	if instanceID != "" {
		sameInstance = labelled && label == instanceID
	}
	if t.Expression == "" || !sameInstance {
		m.delete(t.Ref)
		return false
	}
	sameVersion := func(old model.Template) bool {
		return old.ResourceVersion != "" && old.UID == t.UID && old.ResourceVersion == t.ResourceVersion
	}
	if old, ok := m.compiled[t.Ref]; ok && sameVersion(old) {
		return false
	}
	if old, ok := m.failing[t.Ref]; ok && sameVersion(old) {
		return false
	}
	m.delete(t.Ref)
	if compiles {
		m.compiled[t.Ref] = t
		return false
	}
	m.failing[t.Ref] = t
	return true
}

func (m *catalogModel) delete(ref model.ResourceRef) {
	delete(m.compiled, ref)
	delete(m.failing, ref)
}

// inScope returns the templates an event in namespace is evaluated against,
// in the order InScope documents: templates before cluster templates, then by
// namespace and name.
func (m *catalogModel) inScope(namespace string) []model.Template {
	var templates []model.Template
	for _, t := range m.compiled {
		switch {
		case namespace == "" && t.Ref.Namespace != "":
			templates = append(templates, t)
		case namespace != "" && (t.Ref.Namespace == namespace || t.Ref.Kind == model.KindClusterWorkflowTemplate):
			templates = append(templates, t)
		}
	}
	slices.SortFunc(templates, func(a, b model.Template) int {
		if a.Ref.Kind != b.Ref.Kind {
			if a.Ref.Kind == model.KindWorkflowTemplate {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Ref.Namespace+"/"+a.Ref.Name, b.Ref.Namespace+"/"+b.Ref.Name)
	})
	return templates
}

func TestCatalogModelProperty(t *testing.T) {
	refs := []model.ResourceRef{
		workflowTemplateRef("argo", "a"),
		workflowTemplateRef("argo", "b"),
		workflowTemplateRef("team", "a"),
		clusterTemplateRef("a"),
		clusterTemplateRef("b"),
	}
	// rapid draws the first elements of a list most often, so each list
	// starts with the cases that keep a resource in the catalog.
	expressions := []string{"true", "false", `event.x == 1`, "", "(", "event =="}
	compiles := map[string]bool{"true": true, "false": true, `event.x == 1`: true, "": true}

	checkProperty(t, func(t *rapid.T) {
		instanceID := rapid.SampledFrom([]string{"", "x"}).Draw(t, "instance ID")
		c := NewCatalog(instanceID, nil)
		m := &catalogModel{compiled: map[model.ResourceRef]model.Template{}, failing: map[model.ResourceRef]model.Template{}}

		for range rapid.IntRange(1, 40).Draw(t, "operations") {
			ref := rapid.SampledFrom(refs).Draw(t, "ref")
			if rapid.IntRange(0, 5).Draw(t, "operation") == 5 {
				t.Logf("delete %s", ref)
				c.Delete(ref)
				m.delete(ref)
			} else {
				template := model.Template{
					Ref:             ref,
					UID:             rapid.SampledFrom([]string{"u1", "u2"}).Draw(t, "UID"),
					ResourceVersion: rapid.SampledFrom([]string{"", "1", "2"}).Draw(t, "resource version"),
					Expression:      rapid.SampledFrom(expressions).Draw(t, "expression"),
				}
				switch rapid.SampledFrom([]string{"own", "none", "x", "y"}).Draw(t, "label") {
				case "own":
					if instanceID != "" {
						template = withInstanceID(template, instanceID)
					}
				case "x":
					template = withInstanceID(template, "x")
				case "y":
					template = withInstanceID(template, "y")
				}
				t.Logf("upsert %s uid=%s version=%q expression=%q labels=%v",
					ref, template.UID, template.ResourceVersion, template.Expression, template.Labels)
				err := c.Upsert(template)
				if m.upsert(template, instanceID, compiles[template.Expression]) {
					assert.Error(t, err)
				} else {
					assert.NoError(t, err)
				}
			}

			wantFailing := []model.ResourceRef{}
			for ref := range m.failing {
				wantFailing = append(wantFailing, ref)
			}
			slices.SortFunc(wantFailing, func(a, b model.ResourceRef) int { return strings.Compare(a.String(), b.String()) })
			assert.Equal(t, wantFailing, failingRefs(c.Failing()), "failing")
			for _, namespace := range []string{"argo", "team", "other", ""} {
				var got []model.Template
				for _, program := range c.InScope(namespace, allowAll) {
					got = append(got, program.Template)
				}
				assert.Equal(t, m.inScope(namespace), got, "in scope for namespace %q", namespace)
			}
		}
	})
}
