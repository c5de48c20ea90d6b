package conformance

import (
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// apiVersion is the API version of every Argo resource.
const apiVersion = "argoproj.io/v1alpha1"

// nonceHeader carries a random value per event. Every suite template copies
// it into its parameter "nonce", which is how the suite finds the Workflows
// of one event among all others, on any server.
const (
	nonceHeader    = "X-Conformance-Nonce"
	nonceParameter = "nonce"
)

// Names of the suite's resources. Each of them, except the reference
// example, fires only for events whose discriminator names it or its group,
// so the suite's other events, and anyone else's, leave them alone.
const (
	envTemplate        = "conformance-env"
	fieldsTemplate     = "conformance-fields"
	nullTemplate       = "conformance-null"
	paramsTemplate     = "conformance-params"
	fanoutTemplateA    = "conformance-fanout-a"
	fanoutTemplateB    = "conformance-fanout-b"
	isolationOK        = "conformance-isolation-ok"
	isolationEval      = "conformance-isolation-eval"
	isolationCompile   = "conformance-isolation-compile"
	isolationNonBool   = "conformance-isolation-nonbool"
	isolationParameter = "conformance-isolation-parameter"
	boundTemplate      = "conformance-bound"
	bindingName        = "conformance-binding"
	pipelineTemplate   = "conformance-pipeline"
	referenceTemplate  = "conformance-reference"

	// clusterTemplatePrefix starts the name of the ClusterWorkflowTemplate,
	// which ends in the namespace, so runs in two namespaces do not share it.
	clusterTemplatePrefix = "conformance-cluster-"
)

// Discriminators of the events that fire the suite's templates.
const (
	fanoutDiscriminator    = "conformance-fanout"
	isolationDiscriminator = "conformance-isolation"
	bindingDiscriminator   = "conformance-binding"
	clusterDiscriminator   = "conformance-cluster"

	// quietDiscriminator fires none of the suite's templates.
	quietDiscriminator = "conformance-quiet"
)

// parameterDefault is the default of the parameter "absentDefault" of
// conformance-params.
const parameterDefault = "fallback"

// parameter is a template parameter whose value comes from an expression.
type parameter struct {
	name       string
	expression string
	def        *string
}

// Resources returns the WorkflowTemplates, the ClusterWorkflowTemplate and
// the WorkflowEventBinding the suite needs in namespace, apart from the
// reference example, which depends on the caller (see [ReferenceTemplate]).
func Resources(namespace string) []*unstructured.Unstructured {
	fallback := parameterDefault
	return []*unstructured.Unstructured{
		// The environment, as whole values.
		eventTemplate(namespace, envTemplate, `discriminator == "conformance-env"`,
			parameter{name: "event", expression: "event"},
			parameter{name: "payload", expression: "payload"},
			parameter{name: "metadata", expression: "metadata"},
			parameter{name: "discriminator", expression: "discriminator"},
			parameter{name: "namespace", expression: "namespace"},
		),
		// Fields of an object body.
		eventTemplate(namespace, fieldsTemplate, `discriminator == "conformance-fields"`,
			parameter{name: "large", expression: "event.large"},
			parameter{name: "largeMinus", expression: "event.large - 9007199254740992"},
			parameter{name: "absentIsNil", expression: "event.absent == nil"},
			parameter{name: "messageNotEmpty", expression: `event.message != ""`},
			parameter{name: "chained", expression: `event?.a?.b ?? "fallback"`},
		),
		// Reads a field of the body only when the body is not null, which a
		// server that type-checks against the body cannot compile for an
		// empty body.
		eventTemplate(namespace, nullTemplate, `discriminator == "conformance-null" && (event == nil || event.x != nil)`,
			parameter{name: "isNull", expression: "event == nil"},
		),
		// Parameter encoding.
		eventTemplate(namespace, paramsTemplate, `discriminator == "conformance-params"`,
			parameter{name: "text", expression: "event.text"},
			parameter{name: "integer", expression: "event.integer"},
			parameter{name: "negative", expression: "event.negative"},
			parameter{name: "float", expression: "event.float"},
			parameter{name: "fraction", expression: "event.fraction"},
			parameter{name: "truth", expression: "event.truth"},
			parameter{name: "falsehood", expression: "event.falsehood"},
			parameter{name: "object", expression: "event.object"},
			parameter{name: "array", expression: "event.array"},
			parameter{name: "absent", expression: "event.absent"},
			parameter{name: "absentDefault", expression: "event.absent", def: &fallback},
		),
		// Two templates for one event.
		eventTemplate(namespace, fanoutTemplateA, `discriminator == "conformance-fanout"`),
		eventTemplate(namespace, fanoutTemplateB, `discriminator == "conformance-fanout"`),
		// One template that works next to four that fail in different ways
		// for the body {}.
		eventTemplate(namespace, isolationOK, `discriminator == "conformance-isolation"`),
		eventTemplate(namespace, isolationEval, `discriminator == "conformance-isolation" && event.a.b == 1`),
		eventTemplate(namespace, isolationCompile, `discriminator == "conformance-isolation" && (`),
		eventTemplate(namespace, isolationNonBool, `discriminator == "conformance-isolation" ? "yes" : false`),
		eventTemplate(namespace, isolationParameter, `discriminator == "conformance-isolation"`,
			parameter{name: "missing", expression: "event.a.b"},
		),
		// A binding and the template it submits.
		boundWorkflowTemplate(namespace),
		binding(namespace),
		// The pipeline checks.
		eventTemplate(namespace, pipelineTemplate, `discriminator == "conformance-pipeline"`),
		// A cluster template whose Workflow runs in the event's namespace.
		clusterTemplate(namespace),
	}
}

// ReferenceTemplate returns the reference example of the events design in
// namespace, with its expression comparing the caller to subject instead of
// "admin", so that any token can fire it.
func ReferenceTemplate(namespace, subject string) *unstructured.Unstructured {
	expression := "metadata.claimSet.sub == " + strconv.Quote(subject) +
		` && event.message != "" && metadata["x-argo-e2e"] == ["true"]`
	template := eventTemplate(namespace, referenceTemplate, expression,
		parameter{name: "message", expression: "event.message"},
	)
	spec := template.Object["spec"].(map[string]any)
	spec["templates"] = []any{map[string]any{
		"name": "main",
		"container": map[string]any{
			"image": "argoproj/argosay:v2",
			"args":  []any{"echo", "{{workflow.parameters.message}}"},
		},
	}}
	return template
}

// clusterTemplateName returns the name of the ClusterWorkflowTemplate of a
// run in namespace.
func clusterTemplateName(namespace string) string {
	return clusterTemplatePrefix + namespace
}

func clusterTemplate(namespace string) *unstructured.Unstructured {
	expression := "namespace == " + strconv.Quote(namespace) + ` && discriminator == "conformance-cluster"`
	template := eventTemplate("", clusterTemplateName(namespace), expression)
	template.SetKind("ClusterWorkflowTemplate")
	return template
}

// eventTemplate returns a WorkflowTemplate with an event expression, the
// parameter nonce and then parameters, and one container step that does
// nothing, so that its Workflows can run.
func eventTemplate(namespace, name, expression string, parameters ...parameter) *unstructured.Unstructured {
	all := append([]parameter{{name: nonceParameter, expression: `metadata["x-conformance-nonce"]`}}, parameters...)
	list := make([]any, len(all))
	for i, p := range all {
		fields := map[string]any{"name": p.name, "valueFrom": map[string]any{"expression": p.expression}}
		if p.def != nil {
			fields["default"] = *p.def
		}
		list[i] = fields
	}

	template := workflowTemplate(namespace, name)
	spec := template.Object["spec"].(map[string]any)
	spec["event"] = map[string]any{"expression": expression}
	spec["arguments"] = map[string]any{"parameters": list}
	return template
}

// workflowTemplate returns a WorkflowTemplate without an event block.
func workflowTemplate(namespace, name string) *unstructured.Unstructured {
	metadata := map[string]any{"name": name}
	if namespace != "" {
		metadata["namespace"] = namespace
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "WorkflowTemplate",
		"metadata":   metadata,
		"spec": map[string]any{
			"entrypoint": "main",
			"templates": []any{map[string]any{
				"name":      "main",
				"container": map[string]any{"image": "busybox:1.37", "args": []any{"true"}},
			}},
		},
	}}
}

// boundWorkflowTemplate is the template the binding submits. It has no event
// block of its own, and declares the parameters the binding passes.
func boundWorkflowTemplate(namespace string) *unstructured.Unstructured {
	template := workflowTemplate(namespace, boundTemplate)
	spec := template.Object["spec"].(map[string]any)
	spec["arguments"] = map[string]any{"parameters": []any{
		map[string]any{"name": nonceParameter},
		map[string]any{"name": "message"},
	}}
	return template
}

func binding(namespace string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "WorkflowEventBinding",
		"metadata":   map[string]any{"name": bindingName, "namespace": namespace},
		"spec": map[string]any{
			"event": map[string]any{"selector": `discriminator == "conformance-binding"`},
			"submit": map[string]any{
				"workflowTemplateRef": map[string]any{"name": boundTemplate},
				"arguments": map[string]any{"parameters": []any{
					map[string]any{"name": nonceParameter, "valueFrom": map[string]any{"event": `metadata["x-conformance-nonce"]`}},
					map[string]any{"name": "message", "valueFrom": map[string]any{"event": "event.message"}},
				}},
			},
		},
	}}
}
