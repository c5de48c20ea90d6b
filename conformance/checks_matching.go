package conformance

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Labels a created Workflow carries.
const (
	templateLabel        = "workflows.argoproj.io/workflow-template"
	clusterTemplateLabel = "workflows.argoproj.io/cluster-workflow-template"
	creatorLabel         = "workflows.argoproj.io/creator"
)

// labelValuePattern is a valid Kubernetes label value that is not empty.
var labelValuePattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// createdEvent is a real event and the Workflows it created.
type createdEvent struct {
	req       request
	resp      *response
	workflows []*unstructured.Unstructured
}

// needWorkflowList ends a check as skipped when the suite cannot read the
// Workflows the server created.
func (r *run) needWorkflowList() error {
	if r.listWorkflows == nil {
		return skipf("cannot read created Workflows: the server has no GET /api/v1/workflows/{namespace}; give --kubeconfig")
	}
	return nil
}

// sendAndWait sends req with a new nonce and waits until each of resources
// has created a Workflow for it.
func (r *run) sendAndWait(ctx context.Context, req request, resources ...string) (createdEvent, error) {
	nonce, resp, err := r.submit(ctx, req)
	if err != nil {
		return createdEvent{}, err
	}
	workflows, err := r.waitForEventWorkflows(ctx, nonce, r.target.WaitTimeout, func(workflows []*unstructured.Unstructured) bool {
		for _, resource := range resources {
			if len(createdBy(workflows, resource)) == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return createdEvent{}, fmt.Errorf("sent %s, got %s and Workflows from %s, want one from each of %s (%v)",
			describe(req), describeResponse(resp), origins(workflows), strings.Join(resources, ", "), err)
	}
	return createdEvent{req: req, resp: resp, workflows: workflows}, nil
}

// origins lists the resources the Workflows came from, for messages.
func origins(workflows []*unstructured.Unstructured) string {
	if len(workflows) == 0 {
		return "nothing"
	}
	names := make([]string, len(workflows))
	for i, wf := range workflows {
		names[i] = workflowTemplateRef(wf)
	}
	return strings.Join(names, ", ")
}

// fanoutEvent sends one event that fires both fanout templates and
// returns its Workflows. Several checks share it.
func (r *run) fanoutEvent(ctx context.Context) (createdEvent, error) {
	if r.fanout == nil {
		event, err := r.sendAndWait(ctx, r.post(eventPath(r.target.Namespace, fanoutDiscriminator), `{}`), fanoutTemplateA, fanoutTemplateB)
		r.fanout = &cachedEvent{event: event, err: err}
	}
	return r.fanout.event, r.fanout.err
}

// cachedEvent is a shared createdEvent or its error.
type cachedEvent struct {
	event createdEvent
	err   error
}

func checkEveryMatchCreates(ctx context.Context, r *run) error {
	if err := r.needResources(fanoutTemplateA, fanoutTemplateB); err != nil {
		return err
	}
	if r.listWorkflows == nil && r.dryRun {
		return expectDryRunMatches(ctx, r, fanoutDiscriminator, fanoutTemplateA, fanoutTemplateB)
	}
	if err := r.needWorkflowList(); err != nil {
		return err
	}
	event, err := r.fanoutEvent(ctx)
	if err != nil {
		return err
	}
	for _, template := range []string{fanoutTemplateA, fanoutTemplateB} {
		if n := len(createdBy(event.workflows, template)); n != 1 {
			return fmt.Errorf("sent %s, got %d Workflows from %s, want 1", describe(event.req), n, template)
		}
	}
	return nil
}

// expectDryRunMatches dry-runs {} to discriminator and expects every one of
// resources to match with a Workflow.
func expectDryRunMatches(ctx context.Context, r *run, discriminator string, resources ...string) error {
	results, sent, err := r.dryRunEvent(ctx, r.post(eventPath(r.target.Namespace, discriminator), `{}`))
	if err != nil {
		return err
	}
	for _, resource := range resources {
		if result := results[resource]; !result.Matched || result.Workflow == nil {
			return fmt.Errorf("sent %s, got a dry run where %s did not match (error %q), want a Workflow", describe(sent), resource, result.Error)
		}
	}
	return nil
}

func checkWorkflowShape(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, fanoutDiscriminator), `{}`)
	var wf *unstructured.Unstructured
	via := "created Workflow"
	if r.listWorkflows != nil {
		if err := r.needResources(fanoutTemplateA, fanoutTemplateB); err != nil {
			return err
		}
		event, err := r.fanoutEvent(ctx)
		if err != nil {
			return err
		}
		wf = createdBy(event.workflows, fanoutTemplateA)[0]
	} else {
		obs, err := r.observe(ctx, req, fanoutTemplateA, preferDryRun)
		if err != nil {
			return err
		}
		wf, via = obs.workflow, obs.via
	}

	if problem := workflowShapeProblem(wf, r.target.Namespace, fanoutTemplateA); problem != "" {
		return fmt.Errorf("sent %s, got a %s with %s", describe(req), via, problem)
	}
	return nil
}

// workflowShapeProblem returns what is wrong with a Workflow created from
// the WorkflowTemplate template in namespace, or "".
func workflowShapeProblem(wf *unstructured.Unstructured, namespace, template string) string {
	ref, _, _ := unstructured.NestedMap(wf.Object, "spec", "workflowTemplateRef")
	clusterScope, _ := ref["clusterScope"].(bool)
	parameters, _, _ := unstructured.NestedSlice(wf.Object, "spec", "arguments", "parameters")
	creator := wf.GetLabels()[creatorLabel]
	switch {
	case wf.GetAPIVersion() != apiVersion || wf.GetKind() != "Workflow":
		return fmt.Sprintf("apiVersion %q and kind %q, want %s Workflow", wf.GetAPIVersion(), wf.GetKind(), apiVersion)
	case wf.GetNamespace() != namespace:
		return fmt.Sprintf("namespace %q, want %q", wf.GetNamespace(), namespace)
	case !namedAfter(wf, template):
		return fmt.Sprintf("name %q and generateName %q, want either to start with %q", wf.GetName(), wf.GetGenerateName(), template+"-")
	case ref["name"] != template || clusterScope:
		return fmt.Sprintf("spec.workflowTemplateRef %v, want name %s and no clusterScope", ref, template)
	case wf.GetLabels()[templateLabel] != template:
		return fmt.Sprintf("label %s=%q, want %q", templateLabel, wf.GetLabels()[templateLabel], template)
	case !labelValuePattern.MatchString(creator):
		return fmt.Sprintf("label %s=%q, want the caller's subject as a label value", creatorLabel, creator)
	case len(parameters) == 0:
		return "no spec.arguments.parameters, want the template's parameters"
	}
	return ""
}

func checkEventIDStamped(ctx context.Context, r *run) error {
	if err := r.needResources(fanoutTemplateA, fanoutTemplateB); err != nil {
		return err
	}
	if err := r.needWorkflowList(); err != nil {
		return err
	}
	event, err := r.fanoutEvent(ctx)
	if err != nil {
		return err
	}
	id := eventID(event.resp)
	if id == "" {
		return unexpected(event.req, event.resp, `a JSON object with "eventId"`)
	}
	for _, wf := range event.workflows {
		if !slices.Contains(mapValues(wf.GetLabels()), id) && !slices.Contains(mapValues(wf.GetAnnotations()), id) {
			return fmt.Errorf("sent %s, got event ID %q and Workflow %s without it in a label or annotation, want it on every Workflow",
				describe(event.req), id, wf.GetName())
		}
	}
	return nil
}

func mapValues(m map[string]string) []string {
	values := make([]string, 0, len(m))
	for _, value := range m {
		values = append(values, value)
	}
	return values
}

// failingIsolation are the isolation templates that fail for the body {}.
var failingIsolation = []string{isolationEval, isolationCompile, isolationNonBool, isolationParameter}

func checkFailureIsolated(ctx context.Context, r *run) error {
	if err := r.needResources(append([]string{isolationOK}, failingIsolation...)...); err != nil {
		return err
	}
	if r.listWorkflows == nil && r.dryRun {
		return expectDryRunMatches(ctx, r, isolationDiscriminator, isolationOK)
	}
	if err := r.needWorkflowList(); err != nil {
		return err
	}
	event, err := r.sendAndWait(ctx, r.post(eventPath(r.target.Namespace, isolationDiscriminator), `{}`), isolationOK)
	if err != nil {
		return err
	}
	for _, template := range failingIsolation {
		if created := createdBy(event.workflows, template); len(created) > 0 {
			return fmt.Errorf("sent %s, got a Workflow from %s, whose expression fails for {}, want none", describe(event.req), template)
		}
	}
	return nil
}

func checkErrorsInDryRun(ctx context.Context, r *run) error {
	if !r.dryRun {
		return skipf("the server responded to ?dryRun=All with no dry run")
	}
	if err := r.needResources(append([]string{isolationOK}, failingIsolation...)...); err != nil {
		return err
	}
	results, sent, err := r.dryRunEvent(ctx, r.post(eventPath(r.target.Namespace, isolationDiscriminator), `{}`))
	if err != nil {
		return err
	}
	if ok := results[isolationOK]; !ok.Matched || ok.Workflow == nil {
		return fmt.Errorf("sent %s, got a dry run where %s did not match (error %q), want a Workflow", describe(sent), isolationOK, ok.Error)
	}
	for _, template := range failingIsolation {
		if result := results[template]; result.Error == "" || result.Workflow != nil {
			return fmt.Errorf("sent %s, got a dry run where %s has error %q and a Workflow: %t, want its error and no Workflow",
				describe(sent), template, result.Error, result.Workflow != nil)
		}
	}
	return nil
}

func checkClusterTemplate(ctx context.Context, r *run) error {
	name := clusterTemplateName(r.target.Namespace)
	req := r.post(eventPath(r.target.Namespace, clusterDiscriminator), `{}`)
	obs, err := r.observe(ctx, req, name, preferCreated)
	if err != nil {
		return err
	}
	ref, _, _ := unstructured.NestedMap(obs.workflow.Object, "spec", "workflowTemplateRef")
	clusterScope, _ := ref["clusterScope"].(bool)
	switch {
	case ref["name"] != name || !clusterScope:
		return fmt.Errorf("sent %s, got a %s with spec.workflowTemplateRef %v, want name %s and clusterScope true", describe(obs.sent), obs.via, ref, name)
	case obs.workflow.GetNamespace() != r.target.Namespace:
		return fmt.Errorf("sent %s, got a %s in namespace %q, want the event's namespace %q", describe(obs.sent), obs.via, obs.workflow.GetNamespace(), r.target.Namespace)
	case obs.workflow.GetLabels()[clusterTemplateLabel] != name:
		return fmt.Errorf("sent %s, got a %s with label %s=%q, want %q", describe(obs.sent), obs.via, clusterTemplateLabel, obs.workflow.GetLabels()[clusterTemplateLabel], name)
	}
	return nil
}

func checkBinding(ctx context.Context, r *run) error {
	req := r.post(eventPath(r.target.Namespace, bindingDiscriminator), `{"message": "bound"}`)
	obs, err := r.observe(ctx, req, bindingName, preferCreated)
	if err != nil {
		return err
	}
	if ref := workflowTemplateRef(obs.workflow); ref != boundTemplate {
		return fmt.Errorf("sent %s, got a %s that references %q, want %q", describe(obs.sent), obs.via, ref, boundTemplate)
	}
	if label := obs.workflow.GetLabels()[bindingLabel]; label != bindingName {
		return fmt.Errorf("sent %s, got a %s with label %s=%q, want %q", describe(obs.sent), obs.via, bindingLabel, label, bindingName)
	}
	return expectParameter(obs, bindingName, "message", "bound")
}

func checkDryRun(ctx context.Context, r *run) error {
	if !r.dryRun {
		return skipf("the server responded to ?dryRun=All with no dry run")
	}
	if err := r.needResources(fanoutTemplateA, fanoutTemplateB); err != nil {
		return err
	}
	if err := r.needWorkflowList(); err != nil {
		return err
	}

	// A dry run with a nonce of its own.
	dryNonce := newNonce()
	req := r.post(eventPath(r.target.Namespace, fanoutDiscriminator), `{}`)
	req.header = http.Header{nonceHeader: {dryNonce}}
	results, sent, err := r.dryRunEvent(ctx, req)
	if err != nil {
		return err
	}
	for _, template := range []string{fanoutTemplateA, fanoutTemplateB} {
		if result := results[template]; !result.Matched || result.Workflow == nil {
			return fmt.Errorf("sent %s, got a dry run where %s did not match (error %q), want a Workflow", describe(sent), template, result.Error)
		}
	}

	// A real event to the same templates, once its Workflows are there,
	// shows that the dry run, sent before, created none.
	event, err := r.sendAndWait(ctx, r.post(eventPath(r.target.Namespace, fanoutDiscriminator), `{}`), fanoutTemplateA, fanoutTemplateB)
	if err != nil {
		return err
	}
	all, err := r.listWorkflows(ctx, r.target.Namespace)
	if err != nil {
		return fmt.Errorf("list Workflows with %s: %w", r.listSource, err)
	}
	if created := withNonce(all, dryNonce); len(created) > 0 {
		return fmt.Errorf("sent %s, got %d Workflows created by it after the event %s had created its own, want none",
			describe(sent), len(created), describe(event.req))
	}
	return nil
}

// namedAfter reports whether the Workflow's name, or its generateName when
// the server left the name to the API server, starts with template and a
// dash. Argo's server sends generateName; wfevents sends a name derived
// from the event, so a retry cannot create a second Workflow.
func namedAfter(wf *unstructured.Unstructured, template string) bool {
	prefix := template + "-"
	return strings.HasPrefix(wf.GetName(), prefix) || wf.GetGenerateName() == prefix
}
