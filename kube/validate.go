package kube

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wfevents/wfevents/model"
)

// validateWorkflow checks the names, labels and annotations of wf the way the
// API server does, so the embedded cluster, whose fake client checks
// nothing, rejects what a real cluster would. The error is a *model.Error
// with code model.CodeInvalid naming each bad value.
func validateWorkflow(wf model.Workflow) error {
	var problems []string
	add := func(what, value string, errs []string) {
		if len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s %q: %s", what, clipValue(value), strings.Join(errs, "; ")))
		}
	}

	if wf.Name != "" {
		add("metadata.name", wf.Name, validation.IsDNS1123Subdomain(wf.Name))
	}
	if wf.GenerateName != "" {
		// The API server appends five characters to generateName, and the
		// whole must be a valid name.
		add("metadata.generateName", wf.GenerateName, validation.IsDNS1123Subdomain(strings.TrimSuffix(wf.GenerateName, "-")+"-abcde"))
	}
	for _, key := range sortedKeys(wf.Labels) {
		add("label key", key, validation.IsQualifiedName(key))
		add("label value of "+key, wf.Labels[key], validation.IsValidLabelValue(wf.Labels[key]))
	}
	for _, key := range sortedKeys(wf.Annotations) {
		add("annotation key", key, validation.IsQualifiedName(key))
	}

	if len(problems) == 0 {
		return nil
	}
	return model.Errorf(model.CodeInvalid, "workflow is not valid: %s", strings.Join(problems, ", "))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// clipValue cuts a value for an error message, so a huge computed name does
// not make a huge message.
func clipValue(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
