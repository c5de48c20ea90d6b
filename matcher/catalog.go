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
	template model.Template
	err      *CompileError
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
	if !t.HasEvent() || !c.ownsInstance(t) {
		c.Delete(t.Ref)
		return nil
	}
	if c.isCurrent(t) {
		return nil
	}

	program, err := Compile(t)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(t.Ref)
	if err != nil {
		c.failing[t.Ref] = failure{template: t, err: err.(*CompileError)}
		c.logger.Warn("expression does not compile", "resource", t.Ref.String(), "resource_version", t.ResourceVersion, "error", err)
		return err
	}
	byRef := c.programs[t.Ref.Namespace]
	if byRef == nil {
		byRef = make(map[model.ResourceRef]*Program)
		c.programs[t.Ref.Namespace] = byRef
	}
	byRef[t.Ref] = program
	return nil
}

// ownsInstance reports whether t belongs to this instance: labelled with its
// ID, or, without an instance ID, not labelled at all. An empty label value
// still marks another instance's resource, as in Argo.
func (c *Catalog) ownsInstance(t model.Template) bool {
	id, labelled := t.Labels[model.LabelInstanceID]
	if c.instanceID == "" {
		return !labelled
	}
	return labelled && id == c.instanceID
}

// isCurrent reports whether this exact version is already compiled or known
// not to compile.
func (c *Catalog) isCurrent(t model.Template) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if program, ok := c.programs[t.Ref.Namespace][t.Ref]; ok {
		return sameVersion(program.Template, t)
	}
	if failed, ok := c.failing[t.Ref]; ok {
		return sameVersion(failed.template, t)
	}
	return false
}

func sameVersion(a, b model.Template) bool {
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
		a, b := programs[i].Template.Ref, programs[j].Template.Ref
		if a.Kind != b.Kind {
			return a.Kind > b.Kind // WorkflowTemplate before ClusterWorkflowTemplate
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
