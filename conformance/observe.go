package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// pollInterval is how often the suite looks again for Workflows or loaded
// templates while it waits.
const pollInterval = 20 * time.Millisecond

// probeWait bounds one round of the load probe on a server without dry
// run: an event that fires conformance-env and the wait for its Workflow.
const probeWait = time.Second

// setup finds out how the suite can see what an event does, and installs
// its templates when it may.
func (r *run) setup(ctx context.Context) error {
	// A dry run shows what an event would do, without creating anything.
	// Argo's server has none, so the argo profile does not ask.
	if r.target.Profile == ProfileWFEvents {
		supported, err := r.probeDryRun(ctx)
		if err != nil {
			return err
		}
		r.dryRun = supported
	}

	// Created Workflows are read through the hook, or the server's list.
	if err := r.findWorkflowLister(ctx); err != nil {
		return err
	}

	// Install the templates, or find the ones already there.
	if r.target.InstallTemplates != nil {
		if err := r.install(ctx, Resources(r.target.Namespace)); err != nil {
			return err
		}
		r.installed = true
	}
	r.findResources(ctx, allResourceNames(r.target.Namespace))

	// The reference example compares the caller's subject, which the
	// environment shows.
	return r.setupReference(ctx)
}

// cleanup deletes what the suite installed. It runs after the checks, also
// when the run's context is done, so it has a context of its own.
func (r *run) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), r.target.WaitTimeout)
	defer cancel()
	for _, remove := range slices.Backward(r.removers) {
		// NOTE: a failed removal leaves suite templates behind. They fire
		// only for the suite's own discriminators, and the next run with
		// InstallTemplates replaces them.
		_ = remove(ctx)
	}
	r.removers = nil
}

func (r *run) install(ctx context.Context, objects []*unstructured.Unstructured) error {
	remove, err := r.target.InstallTemplates(ctx, objects)
	if err != nil {
		return fmt.Errorf("install the conformance templates in namespace %q: %w", r.target.Namespace, err)
	}
	r.removers = append(r.removers, remove)
	return nil
}

// probeDryRun reports whether the server responds to ?dryRun=All with a dry run.
// An error means the server could not be reached at all.
func (r *run) probeDryRun(ctx context.Context) (bool, error) {
	req := r.post(eventPath(r.target.Namespace, quietDiscriminator)+"?dryRun=All", `{}`)
	resp, err := r.send(ctx, req)
	if err != nil {
		return false, fmt.Errorf("probe the server at %s: %w: check the URL and that the server runs", r.target.URL, err)
	}
	_, err = parseDryRun(resp)
	return err == nil, nil
}

// findWorkflowLister picks how the suite reads created Workflows: the hook,
// or GET /api/v1/workflows/{namespace} when the server serves it.
func (r *run) findWorkflowLister(ctx context.Context) error {
	if r.target.ListWorkflows != nil {
		r.listWorkflows, r.listSource = r.target.ListWorkflows, "the ListWorkflows hook"
		return nil
	}
	path := "/api/v1/workflows/" + r.target.Namespace
	resp, err := r.send(ctx, request{method: http.MethodGet, path: path, token: r.target.Token})
	if err != nil {
		return fmt.Errorf("probe the server at %s: %w", r.target.URL, err)
	}
	if _, err := parseWorkflowList(resp); err == nil {
		r.listWorkflows, r.listSource = r.listWorkflowsOverHTTP, "GET "+path
	}
	return nil
}

func (r *run) listWorkflowsOverHTTP(ctx context.Context, namespace string) ([]*unstructured.Unstructured, error) {
	req := request{method: http.MethodGet, path: "/api/v1/workflows/" + namespace, token: r.target.Token}
	resp, err := r.send(ctx, req)
	if err != nil {
		return nil, err
	}
	items, err := parseWorkflowList(resp)
	if err != nil {
		return nil, fmt.Errorf("sent %s, got %s: %w", describe(req), describeResponse(resp), err)
	}
	return items, nil
}

// parseWorkflowList decodes a WorkflowList response.
func parseWorkflowList(resp *response) ([]*unstructured.Unstructured, error) {
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("status %d, not 200", resp.status)
	}
	// Argo's server writes "items": null for an empty list.
	var fields map[string]json.RawMessage
	var list []map[string]any
	if err := json.Unmarshal(resp.body, &fields); err != nil || fields["items"] == nil || json.Unmarshal(fields["items"], &list) != nil {
		return nil, errors.New("not a WorkflowList: want a JSON object with items")
	}
	items := make([]*unstructured.Unstructured, len(list))
	for i, item := range list {
		items[i] = &unstructured.Unstructured{Object: item}
	}
	return items, nil
}

// allResourceNames returns the names of the resources Resources returns
// that events can fire, which are the ones a dry run lists. The template
// the binding submits has no event block of its own.
func allResourceNames(namespace string) []string {
	var names []string
	for _, obj := range Resources(namespace) {
		_, hasEvent := obj.Object["spec"].(map[string]any)["event"]
		if hasEvent || obj.GetKind() == "WorkflowEventBinding" {
			names = append(names, obj.GetName())
		}
	}
	return names
}

// findResources learns which of names the server has loaded. After an
// install it waits, within the wait timeout, until all are there.
//
// With a dry run it reads them from the dry run's list of resources in
// scope. Without one, it sends events that fire conformance-env until one
// creates a Workflow, and then takes every name as loaded.
func (r *run) findResources(ctx context.Context, names []string) {
	if r.resources == nil {
		r.resources = make(map[string]bool)
	}
	switch {
	case r.dryRun:
		r.resourcesHow = "the dry run lists"
		r.waitForDryRunResources(ctx, names)
	case r.listWorkflows != nil:
		// NOTE: this takes every name as loaded once conformance-env is,
		// because a server without a dry run does not show the others.
		r.resourcesHow = "a probe event of " + envTemplate + " shows"
		if r.probeEnvTemplate(ctx) {
			for _, name := range names {
				r.resources[name] = true
			}
		}
	}
}

func (r *run) waitForDryRunResources(ctx context.Context, names []string) {
	deadline := time.Now().Add(r.target.WaitTimeout)
	for {
		results, _, err := r.dryRunEvent(ctx, r.post(eventPath(r.target.Namespace, quietDiscriminator), `{}`))
		if err == nil {
			for _, name := range names {
				_, found := results[name]
				r.resources[name] = found
			}
		}
		if !r.installed || r.hasResources(names...) || !sleep(ctx, deadline) {
			return
		}
	}
}

// probeEnvTemplate sends events that fire conformance-env until one creates
// a Workflow, within the wait timeout, and reports whether one did.
func (r *run) probeEnvTemplate(ctx context.Context) bool {
	deadline := time.Now().Add(r.target.WaitTimeout)
	for time.Now().Before(deadline) {
		nonce, _, err := r.submit(ctx, r.post(eventPath(r.target.Namespace, envTemplate), `{}`))
		if err != nil {
			return false
		}
		wait := min(probeWait, time.Until(deadline))
		created := func(workflows []*unstructured.Unstructured) bool { return len(workflows) > 0 }
		if _, err := r.waitForEventWorkflows(ctx, nonce, wait, created); err == nil {
			return true
		}
	}
	return false
}

// hasResources reports whether the server has every resource of names.
func (r *run) hasResources(names ...string) bool {
	for _, name := range names {
		if !r.resources[name] {
			return false
		}
	}
	return true
}

// needResources ends a check as skipped unless the server has names.
func (r *run) needResources(names ...string) error {
	var missing []string
	for _, name := range names {
		if !r.resources[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if r.resourcesHow == "" {
		return skipf("cannot see templates or Workflows on this server: give --kubeconfig to read Workflows")
	}
	if r.target.Profile == ProfileArgo {
		return skipf("%s no %s in namespace %q: the suite's templates have an event block, which Argo's server does not read",
			r.resourcesHow, strings.Join(missing, ", "), r.target.Namespace)
	}
	return skipf("%s no %s in namespace %q: give --kubeconfig so the suite installs its templates, or serve the fixtures in conformance/testdata/fixtures",
		r.resourcesHow, strings.Join(missing, ", "), r.target.Namespace)
}

// setupReference learns the caller's subject and, when the suite may
// install, installs the reference example for it.
func (r *run) setupReference(ctx context.Context) error {
	if !r.hasResources(envTemplate) {
		return nil
	}
	env, err := r.observeEnvironment(ctx)
	if err != nil {
		return nil // the environment checks report it
	}
	r.subject = claimSubject(env.parameters["metadata"])
	if !r.installed {
		// Only a dry run shows whether the fixtures have the template.
		if r.dryRun {
			r.findResources(ctx, []string{referenceTemplate})
		}
		return nil
	}
	if r.subject == "" {
		return nil
	}
	if err := r.install(ctx, []*unstructured.Unstructured{ReferenceTemplate(r.target.Namespace, r.subject)}); err != nil {
		return err
	}
	if r.dryRun {
		r.findResources(ctx, []string{referenceTemplate})
	} else {
		// Without a dry run the reference check sends its event again
		// until the template has loaded.
		r.resources[referenceTemplate] = true
	}
	return nil
}

// claimSubject returns metadata.claimSet.sub from the JSON of metadata, or "".
func claimSubject(metadataJSON string) string {
	var metadata struct {
		ClaimSet struct {
			Sub string `json:"sub"`
		} `json:"claimSet"`
	}
	if json.Unmarshal([]byte(metadataJSON), &metadata) != nil {
		return ""
	}
	return metadata.ClaimSet.Sub
}

// dryRunResult is one resource in a dry run's response.
type dryRunResult struct {
	Kind      string         `json:"kind"`
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Matched   bool           `json:"matched"`
	Error     string         `json:"error"`
	Workflow  map[string]any `json:"workflow"`
}

// parseDryRun decodes a dry run's response into its results by resource name.
func parseDryRun(resp *response) (map[string]dryRunResult, error) {
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("status %d, not 200", resp.status)
	}
	var body struct {
		DryRun    bool            `json:"dryRun"`
		Resources *[]dryRunResult `json:"resources"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || !body.DryRun || body.Resources == nil {
		return nil, errors.New(`not a dry run: want a JSON object with "dryRun": true and resources`)
	}
	results := make(map[string]dryRunResult, len(*body.Resources))
	for _, result := range *body.Resources {
		results[result.Name] = result
	}
	return results, nil
}

// dryRunEvent sends req as a dry run and returns its results by name.
func (r *run) dryRunEvent(ctx context.Context, req request) (map[string]dryRunResult, request, error) {
	req.path += "?dryRun=All"
	resp, err := r.send(ctx, req)
	if err != nil {
		return nil, req, err
	}
	results, err := parseDryRun(resp)
	if err != nil {
		return nil, req, unexpected(req, resp, "200 with a dry run (%v)", err)
	}
	return results, req, nil
}

// newNonce returns a random value for nonceHeader.
func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand documents that Read never returns an error
	return hex.EncodeToString(b)
}

// submit sends req with a new nonce and requires 200. It returns the nonce
// and the response.
func (r *run) submit(ctx context.Context, req request) (string, *response, error) {
	nonce := newNonce()
	req.header = req.header.Clone()
	if req.header == nil {
		req.header = http.Header{}
	}
	req.header.Set(nonceHeader, nonce)
	resp, err := r.send(ctx, req)
	if err != nil {
		return nonce, nil, err
	}
	return nonce, resp, expectStatus(req, resp, http.StatusOK)
}

// withNonce returns the Workflows whose nonce parameter is nonce.
func withNonce(workflows []*unstructured.Unstructured, nonce string) []*unstructured.Unstructured {
	var mine []*unstructured.Unstructured
	for _, wf := range workflows {
		if workflowNonce(wf) == nonce {
			mine = append(mine, wf)
		}
	}
	return mine
}

// waitForWorkflows polls the Workflows of the namespace until done is true
// of them, and returns them. After timeout it returns the last ones seen
// with an error.
func (r *run) waitForWorkflows(ctx context.Context, timeout time.Duration, done func([]*unstructured.Unstructured) bool) ([]*unstructured.Unstructured, error) {
	deadline := time.Now().Add(timeout)
	for {
		workflows, err := r.listWorkflows(ctx, r.target.Namespace)
		if err != nil {
			return nil, fmt.Errorf("list Workflows with %s: %w", r.listSource, err)
		}
		if done(workflows) {
			return workflows, nil
		}
		if !sleep(ctx, deadline) {
			return workflows, fmt.Errorf("waited %s", timeout)
		}
	}
}

// waitForEventWorkflows waits until the Workflows of the event with nonce
// meet done, and returns them.
func (r *run) waitForEventWorkflows(ctx context.Context, nonce string, timeout time.Duration, done func([]*unstructured.Unstructured) bool) ([]*unstructured.Unstructured, error) {
	workflows, err := r.waitForWorkflows(ctx, timeout, func(all []*unstructured.Unstructured) bool {
		return done(withNonce(all, nonce))
	})
	return withNonce(workflows, nonce), err
}

// sleep waits one poll interval and reports whether there is time left
// before deadline.
func sleep(ctx context.Context, deadline time.Time) bool {
	if time.Until(deadline) <= 0 {
		return false
	}
	timer := time.NewTimer(min(pollInterval, time.Until(deadline)))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// workflowParameters returns spec.arguments.parameters as name to value.
func workflowParameters(wf *unstructured.Unstructured) map[string]string {
	list, _, _ := unstructured.NestedSlice(wf.Object, "spec", "arguments", "parameters")
	parameters := make(map[string]string, len(list))
	for _, item := range list {
		fields, _ := item.(map[string]any)
		name, _ := fields["name"].(string)
		value, _ := fields["value"].(string)
		parameters[name] = value
	}
	return parameters
}

// workflowNonce returns the nonce a Workflow's parameter carries, or "".
// The parameter is the JSON list of the header's values.
func workflowNonce(wf *unstructured.Unstructured) string {
	var values []string
	if json.Unmarshal([]byte(workflowParameters(wf)[nonceParameter]), &values) != nil || len(values) != 1 {
		return ""
	}
	return values[0]
}

// workflowTemplateRef returns spec.workflowTemplateRef.name.
func workflowTemplateRef(wf *unstructured.Unstructured) string {
	name, _, _ := unstructured.NestedString(wf.Object, "spec", "workflowTemplateRef", "name")
	return name
}

// bindingLabel names the WorkflowEventBinding a Workflow came from.
const bindingLabel = "workflows.argoproj.io/workflow-event-binding"

// createdBy returns the Workflows that resource created: those that
// reference it as their template, or name it in the binding label.
func createdBy(workflows []*unstructured.Unstructured, resource string) []*unstructured.Unstructured {
	var matching []*unstructured.Unstructured
	for _, wf := range workflows {
		if workflowTemplateRef(wf) == resource || wf.GetLabels()[bindingLabel] == resource {
			matching = append(matching, wf)
		}
	}
	return matching
}

// observation is the Workflow one event creates, or would create, from one
// resource.
type observation struct {
	workflow   *unstructured.Unstructured
	parameters map[string]string

	// sent is the request, and via the kind of Workflow seen, for result
	// lines.
	sent request
	via  string
}

// observationResult is a cached observation or its error.
type observationResult struct {
	observation observation
	err         error
}

// observeMode chooses between a created Workflow and a dry run, when the
// server offers both.
type observeMode int

const (
	preferDryRun observeMode = iota
	preferCreated
)

// observe sends req and returns the Workflow it makes resource create.
//
// A dry run shows the Workflow without creating it. A real event shows it
// once created, found by the event's nonce. When the server offers neither,
// the check is skipped.
func (r *run) observe(ctx context.Context, req request, resource string, mode observeMode) (observation, error) {
	if err := r.needResources(resource); err != nil {
		return observation{}, err
	}
	useDryRun := r.dryRun && (mode == preferDryRun || r.listWorkflows == nil)
	switch {
	case useDryRun:
		return r.observeDryRun(ctx, req, resource)
	case r.listWorkflows != nil:
		return r.observeCreated(ctx, req, resource, r.target.WaitTimeout)
	}
	return observation{}, skipf("cannot see what an event does: the server has no dry run and no Workflow list; give --kubeconfig to read Workflows")
}

func (r *run) observeDryRun(ctx context.Context, req request, resource string) (observation, error) {
	results, sent, err := r.dryRunEvent(ctx, req)
	if err != nil {
		return observation{}, err
	}
	result, found := results[resource]
	switch {
	case !found:
		return observation{}, fmt.Errorf("sent %s, got a dry run without %s, want it listed", describe(sent), resource)
	case result.Error != "":
		return observation{}, fmt.Errorf("sent %s, got a dry run where %s failed: %s, want a Workflow", describe(sent), resource, result.Error)
	case !result.Matched || result.Workflow == nil:
		return observation{}, fmt.Errorf("sent %s, got a dry run where %s did not match, want a Workflow", describe(sent), resource)
	}
	wf := &unstructured.Unstructured{Object: result.Workflow}
	return observation{workflow: wf, parameters: workflowParameters(wf), sent: sent, via: "dry-run Workflow"}, nil
}

// errNoWorkflow marks the error of an observation that sent its event and
// saw no Workflow within the wait.
var errNoWorkflow = errors.New("no Workflow")

// observeCreated sends req and waits up to wait for the Workflow it makes
// resource create.
func (r *run) observeCreated(ctx context.Context, req request, resource string, wait time.Duration) (observation, error) {
	nonce, resp, err := r.submit(ctx, req)
	if err != nil {
		return observation{}, err
	}
	workflows, err := r.waitForEventWorkflows(ctx, nonce, wait, func(workflows []*unstructured.Unstructured) bool {
		return len(createdBy(workflows, resource)) > 0
	})
	if err != nil {
		return observation{}, fmt.Errorf("sent %s, got %s and %w from %s (%v), want one", describe(req), describeResponse(resp), errNoWorkflow, resource, err)
	}
	wf := createdBy(workflows, resource)[0]
	return observation{workflow: wf, parameters: workflowParameters(wf), sent: req, via: "created Workflow"}, nil
}

// observeOnce returns the observation cached under key, making it with
// build the first time. Several checks read one observation.
func (r *run) observeOnce(key string, build func() (observation, error)) (observation, error) {
	if cached, ok := r.observations[key]; ok {
		return cached.observation, cached.err
	}
	obs, err := build()
	r.observations[key] = observationResult{observation: obs, err: err}
	return obs, err
}
