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
	delete(byRef, ref)
	if len(byRef) == 0 {
		delete(c.programs, ref.Namespace)
	}
}

// InScope returns the programs an event in namespace must be evaluated
// against, sorted by kind, namespace and name.
//
// A namespaced event sees the templates of its namespace and every cluster
// template. A cluster-scoped event (empty namespace) sees the templates of
// each namespace for which mayUse is true.
//
// NOTE: a cluster-scoped event does not see cluster templates, because their
// Workflow is created in the event's namespace and such an event has none.
//
// mayUse is called without the catalog's lock held, because it may ask the
// API server.
func (c *Catalog) InScope(namespace string, mayUse func(namespace string) bool) []*Program {
	var programs []*Program
	if namespace != "" {
		c.mu.RLock()
		programs = appendPrograms(programs, c.programs[namespace])
		programs = appendPrograms(programs, c.programs[""])
		c.mu.RUnlock()
	} else {
		c.mu.RLock()
		byNamespace := make(map[string][]*Program, len(c.programs))
		for ns, byRef := range c.programs {
			if ns != "" {
				byNamespace[ns] = appendPrograms(nil, byRef)
			}
		}
		c.mu.RUnlock()

		for ns, inNamespace := range byNamespace {
			if mayUse(ns) {
				programs = append(programs, inNamespace...)
			}
		}
	}

	sort.Slice(programs, func(i, j int) bool {
		a, b := programs[i].meta.Ref, programs[j].meta.Ref
		if a.Kind != b.Kind {
			// WorkflowTemplate, then WorkflowEventBinding, then
			// ClusterWorkflowTemplate.
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
