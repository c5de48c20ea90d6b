package model

// KindWorkflowEventBinding is Argo's WorkflowEventBinding, which starts a
// template it references when its selector matches an event.
const KindWorkflowEventBinding Kind = "WorkflowEventBinding"

// Binding is a WorkflowEventBinding, reduced to the fields that decide
// whether and how an event submits a template.
type Binding struct {
	Ref ResourceRef

	// UID and ResourceVersion identify one version of the resource, so its
	// expressions are compiled once per version.
	UID             string
	ResourceVersion string

	// Labels are the resource's own labels, used for instance ID filtering.
	Labels map[string]string

	// Selector is spec.event.selector.
	Selector string

	// Submit is spec.submit. A binding without one matches and creates
	// nothing.
	Submit *Submit
}

// Submit is the part of a binding that describes the Workflow it creates.
type Submit struct {
	// TemplateRef is spec.submit.workflowTemplateRef.
	TemplateRef TemplateRef

	// Parameters are spec.submit.arguments.parameters, whose Expression is
	// valueFrom.event.
	Parameters []Parameter

	// Metadata holds expressions for the Workflow's metadata. Each must
	// return a string.
	Metadata SubmitMetadata
}

// SubmitMetadata is spec.submit.metadata: an expression per field.
type SubmitMetadata struct {
	Name         string
	GenerateName string
	Labels       map[string]string
	Annotations  map[string]string
}

// ObjectMeta identifies one version of a resource.
type ObjectMeta struct {
	Ref             ResourceRef
	UID             string
	ResourceVersion string
	Labels          map[string]string
}

// Meta returns the template's identity and version.
func (t Template) Meta() ObjectMeta {
	return ObjectMeta{Ref: t.Ref, UID: t.UID, ResourceVersion: t.ResourceVersion, Labels: t.Labels}
}

// Meta returns the binding's identity and version.
func (b Binding) Meta() ObjectMeta {
	return ObjectMeta{Ref: b.Ref, UID: b.UID, ResourceVersion: b.ResourceVersion, Labels: b.Labels}
}

// Label keys that only bindings and caller details add.
const (
	LabelWorkflowEventBinding     = "workflows.argoproj.io/workflow-event-binding"
	LabelCreatorEmail             = "workflows.argoproj.io/creator-email"
	LabelCreatorPreferredUsername = "workflows.argoproj.io/creator-preferred-username"
)
