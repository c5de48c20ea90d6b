package matcher

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/wfevents/wfevents/model"
)

// Catalog holds the compiled programs of every template with an event block,
// indexed by namespace. Its methods are safe for concurrent use: informer
// callbacks write while workers read.
type Catalog struct {
	instanceID string
	logger     *slog.Logger

	mu sync.RWMutex
	// programs maps a namespace ("" for cluster-scoped kinds) to its programs.
	programs map[string]map[model.ResourceRef]*Program
	// sorted holds each namespace's programs in InScope's order, rebuilt on
	// every change, so events, which far outnumber changes, never sort.
	sorted map[string][]*Program
	// failing holds the latest compile error of each resource that has one,
	// with the version that failed.
	failing map[model.ResourceRef]failure
}

type failure struct {
	meta model.ObjectMeta
	err  *CompileError
}

// NewCatalog returns an empty catalog. Only resources whose instance ID label
// equals instanceID are kept; with an empty instanceID, only resources without
// the label. A nil logger discards.
func NewCatalog(instanceID string, logger *slog.Logger) *Catalog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Catalog{
		instanceID: instanceID,
		logger:     logger,
		programs:   make(map[string]map[model.ResourceRef]*Program),
		sorted:     make(map[string][]*Program),
		failing:    make(map[model.ResourceRef]failure),
	}
}

// Upsert compiles t and stores it, replacing any earlier version. A version
// already compiled, or already known not to compile, is not compiled again
// and returns nil, so a caller that reports the returned error reports each
// version once. A template without an event block, or with another instance
// ID, is removed. A compile error is returned and remembered, and the
// resource is left out until a version compiles.
func (c *Catalog) Upsert(t model.Template) error {
	return c.upsert(t.Meta(), t.HasEvent(), func() (*Program, error) { return Compile(t) })
}

// UpsertBinding is Upsert for a WorkflowEventBinding. A binding without a
// selector is removed.
func (c *Catalog) UpsertBinding(b model.Binding) error {
	return c.upsert(b.Meta(), b.Selector != "", func() (*Program, error) { return CompileBinding(b) })
}

func (c *Catalog) upsert(meta model.ObjectMeta, hasEvent bool, compile func() (*Program, error)) error {
	if !hasEvent || !c.ownsInstance(meta) {
		c.Delete(meta.Ref)
		return nil
	}
	if c.isCurrent(meta) {
		return nil
	}

	program, err := compile()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(meta.Ref)
	if err != nil {
		c.failing[meta.Ref] = failure{meta: meta, err: err.(*CompileError)}
		c.logger.Warn("expression does not compile", "resource", meta.Ref.String(), "resource_version", meta.ResourceVersion, "error", err)
		return err
	}
	byRef := c.programs[meta.Ref.Namespace]
	if byRef == nil {
		byRef = make(map[model.ResourceRef]*Program)
		c.programs[meta.Ref.Namespace] = byRef
	}
	byRef[meta.Ref] = program
	c.sorted[meta.Ref.Namespace] = sortPrograms(appendPrograms(nil, byRef))
	return nil
}

// ownsInstance reports whether t belongs to this instance: labelled with its
// ID, or, without an instance ID, not labelled at all. An empty label value
// still marks another instance's resource, as in Argo.
func (c *Catalog) ownsInstance(meta model.ObjectMeta) bool {
	id, labelled := meta.Labels[model.LabelInstanceID]
	if c.instanceID == "" {
		return !labelled
	}
	return labelled && id == c.instanceID
}

// isCurrent reports whether this exact version is already compiled or known
// not to compile.
func (c *Catalog) isCurrent(meta model.ObjectMeta) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if program, ok := c.programs[meta.Ref.Namespace][meta.Ref]; ok {
		return sameVersion(program.meta, meta)
	}
	if failed, ok := c.failing[meta.Ref]; ok {
		return sameVersion(failed.meta, meta)
	}
	return false
}

func sameVersion(a, b model.ObjectMeta) bool {
	return a.ResourceVersion != "" && a.UID == b.UID && a.ResourceVersion == b.ResourceVersion
}

// Delete removes the resource.
func (c *Catalog) Delete(ref model.ResourceRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(ref)
}

func (c *Catalog) remove(ref model.ResourceRef) {
	delete(c.failing, ref)
	byRef := c.programs[ref.Namespace]
	if _, ok := byRef[ref]; !ok {
		return
	}
	delete(byRef, ref)
	if len(byRef) == 0 {
		delete(c.programs, ref.Namespace)
		delete(c.sorted, ref.Namespace)
		return
	}
	c.sorted[ref.Namespace] = sortPrograms(appendPrograms(nil, byRef))
}

// InScope returns the programs an event in namespace must be evaluated
// against, sorted by kind, namespace and name.
//
// A namespaced event is evaluated against the templates and bindings of its
// namespace and every cluster template. A cluster-scoped event (empty
// namespace) is evaluated against those of each namespace for which mayUse
// is true.
//
// NOTE: cluster templates are left out for a cluster-scoped event, because
// their Workflow is created in the event's namespace and such an event has
// none.
//
// mayUse is called without the catalog's lock held, because it may ask the
// API server.
func (c *Catalog) InScope(namespace string, mayUse func(namespace string) bool) []*Program {
	// A namespace's kinds all sort before ClusterWorkflowTemplate, so its
	// sorted programs followed by the cluster ones are in order.
	if namespace != "" {
		c.mu.RLock()
		defer c.mu.RUnlock()
		inNamespace, cluster := c.sorted[namespace], c.sorted[""]
		programs := make([]*Program, 0, len(inNamespace)+len(cluster))
		return append(append(programs, inNamespace...), cluster...)
	}

	c.mu.RLock()
	byNamespace := make(map[string][]*Program, len(c.sorted))
	for ns, sorted := range c.sorted {
		if ns != "" {
			byNamespace[ns] = sorted
		}
	}
	c.mu.RUnlock()

	var programs []*Program
	for ns, inNamespace := range byNamespace {
		if mayUse(ns) {
			programs = append(programs, inNamespace...)
		}
	}
	return sortPrograms(programs)
}

// sortPrograms sorts programs by kind (WorkflowTemplate, then
// WorkflowEventBinding, then ClusterWorkflowTemplate), namespace and name,
// and returns them.
func sortPrograms(programs []*Program) []*Program {
	sort.Slice(programs, func(i, j int) bool {
		a, b := programs[i].meta.Ref, programs[j].meta.Ref
		if a.Kind != b.Kind {
			return a.Kind > b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return programs
}

func appendPrograms(programs []*Program, byRef map[model.ResourceRef]*Program) []*Program {
	for _, program := range byRef {
		programs = append(programs, program)
	}
	return programs
}

// Failing returns the current compile errors, sorted by resource.
func (c *Catalog) Failing() []*CompileError {
	c.mu.RLock()
	failing := make([]*CompileError, 0, len(c.failing))
	for _, failed := range c.failing {
		failing = append(failing, failed.err)
	}
	c.mu.RUnlock()

	sort.Slice(failing, func(i, j int) bool { return failing[i].Ref.String() < failing[j].Ref.String() })
	return failing
}

// FailingInScope returns the compile errors of the resources an event in
// namespace would be evaluated against, by the rules of InScope.
func (c *Catalog) FailingInScope(namespace string, mayUse func(namespace string) bool) []*CompileError {
	var inScope []*CompileError
	for _, err := range c.Failing() {
		ns := err.Ref.Namespace
		switch {
		case namespace != "" && (ns == namespace || ns == ""):
			inScope = append(inScope, err)
		case namespace == "" && ns != "" && mayUse(ns):
			inScope = append(inScope, err)
		}
	}
	return inScope
}
