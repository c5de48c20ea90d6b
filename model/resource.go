package model

import "fmt"

// Kind names the resource kinds whose expressions can start Workflows.
type Kind string

// The resource kinds read from the cluster.
const (
	KindWorkflowTemplate        Kind = "WorkflowTemplate"
	KindClusterWorkflowTemplate Kind = "ClusterWorkflowTemplate"
)

// ResourceRef names one resource. Namespace is empty for cluster-scoped kinds.
type ResourceRef struct {
	Kind      Kind
	Namespace string
	Name      string
}

// String formats the reference as kind/namespace/name, or kind/name for a
// cluster-scoped resource.
func (r ResourceRef) String() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s/%s", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s/%s/%s", r.Kind, r.Namespace, r.Name)
}

// Template is a WorkflowTemplate or ClusterWorkflowTemplate, reduced to the
// fields that decide whether and how an event submits it.
type Template struct {
	Ref ResourceRef

	// UID and ResourceVersion identify one version of the resource, so its
	// expressions are compiled once per version.
	UID             string
	ResourceVersion string

	// Labels are the resource's own labels, used for instance ID filtering.
	Labels map[string]string

	// Expression is spec.event.expression. A template without one is never
	// submitted by an event.
	Expression string

	// Parameters are spec.arguments.parameters, in order.
	Parameters []Parameter

	// WorkflowMetadata is spec.workflowMetadata: labels and annotations that
	// every Workflow created from the template carries.
	WorkflowMetadata Metadata
}

// HasEvent reports whether the template has an event block.
func (t Template) HasEvent() bool { return t.Expression != "" }

// Parameter is one template parameter.
type Parameter struct {
	Name string

	// Value is the parameter's fixed value, if any.
	Value *string

	// Default is the value used when Expression yields nil.
	Default *string

	// Expression is valueFrom.expression, evaluated against the event.
	Expression string
}

// Metadata is a set of labels and annotations.
type Metadata struct {
	Labels      map[string]string
	Annotations map[string]string
}

// ParameterValue is a parameter's computed value in a created Workflow.
type ParameterValue struct {
	Name  string
	Value string
}

// Workflow is the Workflow an event creates: a reference to a template and
// the parameters computed from the event.
type Workflow struct {
	Namespace    string
	Name         string
	GenerateName string
	Labels       map[string]string
	Annotations  map[string]string

	// TemplateRef is spec.workflowTemplateRef.
	TemplateRef TemplateRef

	// Parameters are spec.arguments.parameters.
	Parameters []ParameterValue
}

// TemplateRef names the template a Workflow runs.
type TemplateRef struct {
	Name         string
	ClusterScope bool
}
