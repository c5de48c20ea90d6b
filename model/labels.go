package model

// Label keys written on created Workflows. The workflows.argoproj.io keys are
// the ones Argo's own server writes, so Argo's UI and CLI group them as usual.
const (
	LabelWorkflowTemplate        = "workflows.argoproj.io/workflow-template"
	LabelClusterWorkflowTemplate = "workflows.argoproj.io/cluster-workflow-template"
	LabelCreator                 = "workflows.argoproj.io/creator"
	LabelInstanceID              = "workflows.argoproj.io/controller-instanceid"

	// LabelEventID carries the ID of the event that created the Workflow.
	LabelEventID = "wfevents.dev/event-id"
)
