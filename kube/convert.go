package kube

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wfevents/wfevents/model"
)

// The Argo resources wfevents reads and writes.
var (
	WorkflowsResource                = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"}
	WorkflowTemplatesResource        = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflowtemplates"}
	ClusterWorkflowTemplatesResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "clusterworkflowtemplates"}
	WorkflowEventBindingsResource    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workfloweventbindings"}
)

const apiVersion = "argoproj.io/v1alpha1"

// TemplateFromObject converts a WorkflowTemplate or ClusterWorkflowTemplate.
// A field of the wrong type is an error naming the field.
func TemplateFromObject(obj *unstructured.Unstructured) (model.Template, error) {
	t := model.Template{
		Ref: model.ResourceRef{
			Kind:      model.Kind(obj.GetKind()),
			Namespace: obj.GetNamespace(),
			Name:      obj.GetName(),
		},
		UID:             string(obj.GetUID()),
		ResourceVersion: obj.GetResourceVersion(),
		Labels:          obj.GetLabels(),
	}

	var err error
	t.Expression, _, err = unstructured.NestedString(obj.Object, "spec", "event", "expression")
	if err != nil {
		return t, fmt.Errorf("read spec.event.expression of %s: %w", t.Ref, err)
	}
	t.WorkflowMetadata.Labels, _, err = unstructured.NestedStringMap(obj.Object, "spec", "workflowMetadata", "labels")
	if err != nil {
		return t, fmt.Errorf("read spec.workflowMetadata.labels of %s: %w", t.Ref, err)
	}
	t.WorkflowMetadata.Annotations, _, err = unstructured.NestedStringMap(obj.Object, "spec", "workflowMetadata", "annotations")
	if err != nil {
		return t, fmt.Errorf("read spec.workflowMetadata.annotations of %s: %w", t.Ref, err)
	}

	parameters, _, err := unstructured.NestedSlice(obj.Object, "spec", "arguments", "parameters")
	if err != nil {
		return t, fmt.Errorf("read spec.arguments.parameters of %s: %w", t.Ref, err)
	}
	for i, raw := range parameters {
		parameter, err := parameterFromObject(raw)
		if err != nil {
			return t, fmt.Errorf("read spec.arguments.parameters[%d] of %s: %w", i, t.Ref, err)
		}
		t.Parameters = append(t.Parameters, parameter)
	}
	return t, nil
}

// BindingFromObject converts a WorkflowEventBinding. A field of the wrong
// type is an error naming the field.
func BindingFromObject(obj *unstructured.Unstructured) (model.Binding, error) {
	b := model.Binding{
		Ref: model.ResourceRef{
			Kind:      model.KindWorkflowEventBinding,
			Namespace: obj.GetNamespace(),
			Name:      obj.GetName(),
		},
		UID:             string(obj.GetUID()),
		ResourceVersion: obj.GetResourceVersion(),
		Labels:          obj.GetLabels(),
	}

	var err error
	b.Selector, _, err = unstructured.NestedString(obj.Object, "spec", "event", "selector")
	if err != nil {
		return b, fmt.Errorf("read spec.event.selector of %s: %w", b.Ref, err)
	}
	submit, found, err := unstructured.NestedMap(obj.Object, "spec", "submit")
	if err != nil {
		return b, fmt.Errorf("read spec.submit of %s: %w", b.Ref, err)
	}
	if !found {
		return b, nil
	}

	b.Submit = &model.Submit{}
	fields := []struct {
		path   []string
		target *string
	}{
		{[]string{"workflowTemplateRef", "name"}, &b.Submit.TemplateRef.Name},
		{[]string{"metadata", "name"}, &b.Submit.Metadata.Name},
		{[]string{"metadata", "generateName"}, &b.Submit.Metadata.GenerateName},
	}
	for _, field := range fields {
		if *field.target, _, err = unstructured.NestedString(submit, field.path...); err != nil {
			return b, fmt.Errorf("read spec.submit.%s of %s: %w", strings.Join(field.path, "."), b.Ref, err)
		}
	}
	if b.Submit.TemplateRef.ClusterScope, _, err = unstructured.NestedBool(submit, "workflowTemplateRef", "clusterScope"); err != nil {
		return b, fmt.Errorf("read spec.submit.workflowTemplateRef.clusterScope of %s: %w", b.Ref, err)
	}
	if b.Submit.TemplateRef.Name == "" {
		return b, fmt.Errorf("spec.submit.workflowTemplateRef.name of %s is missing: name the template to submit", b.Ref)
	}
	if b.Submit.Metadata.Labels, _, err = unstructured.NestedStringMap(submit, "metadata", "labels"); err != nil {
		return b, fmt.Errorf("read spec.submit.metadata.labels of %s: %w", b.Ref, err)
	}
	if b.Submit.Metadata.Annotations, _, err = unstructured.NestedStringMap(submit, "metadata", "annotations"); err != nil {
		return b, fmt.Errorf("read spec.submit.metadata.annotations of %s: %w", b.Ref, err)
	}

	parameters, _, err := unstructured.NestedSlice(submit, "arguments", "parameters")
	if err != nil {
		return b, fmt.Errorf("read spec.submit.arguments.parameters of %s: %w", b.Ref, err)
	}
	for i, raw := range parameters {
		parameter, err := bindingParameterFromObject(raw)
		if err != nil {
			return b, fmt.Errorf("read spec.submit.arguments.parameters[%d] of %s: %w", i, b.Ref, err)
		}
		b.Submit.Parameters = append(b.Submit.Parameters, parameter)
	}
	return b, nil
}

// bindingParameterFromObject reads a binding parameter, whose expression is
// valueFrom.event.
func bindingParameterFromObject(raw any) (model.Parameter, error) {
	parameter, err := parameterFromObject(raw)
	if err != nil {
		return parameter, err
	}
	fields := raw.(map[string]any)
	parameter.Expression, _, err = unstructured.NestedString(fields, "valueFrom", "event")
	return parameter, err
}

func parameterFromObject(raw any) (model.Parameter, error) {
	fields, ok := raw.(map[string]any)
	if !ok {
		return model.Parameter{}, fmt.Errorf("parameter is %T, want an object", raw)
	}

	var parameter model.Parameter
	var err error
	if parameter.Name, _, err = unstructured.NestedString(fields, "name"); err != nil {
		return parameter, err
	}
	if parameter.Expression, _, err = unstructured.NestedString(fields, "valueFrom", "expression"); err != nil {
		return parameter, err
	}
	if parameter.Value, err = optionalString(fields, "value"); err != nil {
		return parameter, err
	}
	if parameter.Default, err = optionalString(fields, "default"); err != nil {
		return parameter, err
	}
	return parameter, nil
}

// optionalString reads a parameter's value or default. Like Argo's
// AnyString, it takes a number or a bool as its text, because YAML authors
// write value: 3 and Argo accepts it.
func optionalString(fields map[string]any, name string) (*string, error) {
	raw, found := fields[name]
	if !found || raw == nil {
		return nil, nil
	}
	var value string
	switch typed := raw.(type) {
	case string:
		value = typed
	case bool:
		value = strconv.FormatBool(typed)
	case int64:
		value = strconv.FormatInt(typed, 10)
	case float64:
		value = strconv.FormatFloat(typed, 'f', -1, 64)
	default:
		return nil, fmt.Errorf(".%s is %T, want a string, number or bool", name, raw)
	}
	return &value, nil
}

// WorkflowToObject converts wf to an argoproj.io/v1alpha1 Workflow object.
func WorkflowToObject(wf model.Workflow) *unstructured.Unstructured {
	metadata := map[string]any{"namespace": wf.Namespace}
	if wf.Name != "" {
		metadata["name"] = wf.Name
	}
	// With a name, generateName would be ignored, and the API server's
	// message for a name conflict would wrongly speak of generated names.
	if wf.GenerateName != "" && wf.Name == "" {
		metadata["generateName"] = wf.GenerateName
	}
	if len(wf.Labels) > 0 {
		metadata["labels"] = stringMap(wf.Labels)
	}
	if len(wf.Annotations) > 0 {
		metadata["annotations"] = stringMap(wf.Annotations)
	}

	parameters := make([]any, len(wf.Parameters))
	for i, parameter := range wf.Parameters {
		parameters[i] = map[string]any{"name": parameter.Name, "value": parameter.Value}
	}

	spec := map[string]any{
		"workflowTemplateRef": map[string]any{"name": wf.TemplateRef.Name},
		"arguments":           map[string]any{"parameters": parameters},
	}
	if wf.TemplateRef.ClusterScope {
		spec["workflowTemplateRef"].(map[string]any)["clusterScope"] = true
	}

	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "Workflow",
		"metadata":   metadata,
		"spec":       spec,
	}}
}

// WorkflowFromObject converts a Workflow object back, reading the fields that
// WorkflowToObject writes.
func WorkflowFromObject(obj *unstructured.Unstructured) model.Workflow {
	wf := model.Workflow{
		Namespace:    obj.GetNamespace(),
		Name:         obj.GetName(),
		GenerateName: obj.GetGenerateName(),
		Labels:       obj.GetLabels(),
		Annotations:  obj.GetAnnotations(),
	}
	wf.TemplateRef.Name, _, _ = unstructured.NestedString(obj.Object, "spec", "workflowTemplateRef", "name")
	wf.TemplateRef.ClusterScope, _, _ = unstructured.NestedBool(obj.Object, "spec", "workflowTemplateRef", "clusterScope")

	parameters, _, _ := unstructured.NestedSlice(obj.Object, "spec", "arguments", "parameters")
	for _, raw := range parameters {
		fields, _ := raw.(map[string]any)
		name, _, _ := unstructured.NestedString(fields, "name")
		value, _, _ := unstructured.NestedString(fields, "value")
		wf.Parameters = append(wf.Parameters, model.ParameterValue{Name: name, Value: value})
	}
	return wf
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
