package workers

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
)

// Cluster reads templates and creates Workflows on behalf of a caller, so
// that the cluster's access control applies to the caller. An error whose
// code is model.CodeUnavailable is transient and may be retried, and any
// other is final.
type Cluster interface {
	// GetTemplate reads the WorkflowTemplate ref names in namespace, or the
	// ClusterWorkflowTemplate when ref.ClusterScope is set.
	GetTemplate(ctx context.Context, caller model.Identity, namespace string, ref model.TemplateRef) (model.Template, error)

	CreateWorkflow(ctx context.Context, caller model.Identity, wf model.Workflow) (model.Workflow, error)

	// GetWorkflow reads a Workflow with the server's own identity, to tell
	// a retried create of the same event from a name clash with another.
	// It does not act as the caller, who may create Workflows without being
	// allowed to read them.
	GetWorkflow(ctx context.Context, namespace, name string) (model.Workflow, error)
}

// FailureReporter makes a resource's failure for an event visible where the
// resource's owner looks, such as a Kubernetes Event on it.
type FailureReporter interface {
	ReportFailure(resource model.ObjectMeta, eventID string, err error)
}

// TemplateSource returns the compiled templates an event must be evaluated
// against. *matcher.Catalog implements it.
type TemplateSource interface {
	InScope(namespace string, mayUse func(namespace string) bool) []*matcher.Program
}

// Outcome is the result of one event for one template.
type Outcome struct {
	Ref     model.ResourceRef
	Matched bool

	// Workflow is the Workflow created, or the one that would have been
	// created in a dry run. It is nil when nothing matched or an error
	// stopped the template.
	Workflow *model.Workflow

	// Err is the evaluation or creation error, if any. It affects only this
	// template: the event's other templates are still processed.
	Err error

	meta model.ObjectMeta
}

// Backoff sets how transient create errors are retried: capped exponential
// waits with jitter, or the wait the API server asked for with Retry-After,
// until Attempts or Deadline is reached.
type Backoff struct {
	Attempts int           // total attempts, at least 1
	Initial  time.Duration // wait before the second attempt
	Max      time.Duration // cap on any one wait
	Deadline time.Duration // cap on the time spent retrying; zero means none
}

// DefaultBackoff retries for up to 30 seconds.
var DefaultBackoff = Backoff{Attempts: 8, Initial: 200 * time.Millisecond, Max: 5 * time.Second, Deadline: 30 * time.Second}

// Dispatcher is the sync function of the workers: it evaluates one event
// against the templates in scope and creates a Workflow for every match.
// Its fields must not change after first use. It is safe for concurrent use.
type Dispatcher struct {
	Templates TemplateSource
	Cluster   Cluster

	// Authorizer selects the namespaces a cluster-scoped event reaches. Nil
	// means the namespaces listed in the caller's model.Identity.
	Authorizer model.Authorizer

	// Reporter, when set, receives every template that failed for an event.
	Reporter FailureReporter

	// InstanceID, when set, is written on every created Workflow.
	InstanceID string

	// Backoff retries transient create errors. The zero value means
	// DefaultBackoff.
	Backoff Backoff

	// Logger receives one line per error and, at Debug, one per event. Nil
	// discards.
	Logger *slog.Logger

	// Metrics counts processed events, matches, Workflows and failures. Nil
	// records nothing.
	Metrics *metrics.Metrics

	// Now returns the current time, for the processing time. Nil means
	// time.Now.
	Now func() time.Time
}

// Process dispatches ev and reports the outcome, as Run does. It implements
// Processor.
func (d *Dispatcher) Process(ctx context.Context, ev model.Event) {
	d.Run(ctx, ev)
}

// Run dispatches ev and makes the outcome visible: one log line per failed
// resource and its report to Reporter, the metrics, and at Debug one line
// for the event. It returns the outcomes, for the synchronous mode.
func (d *Dispatcher) Run(ctx context.Context, ev model.Event) []Outcome {
	logger := d.logger().With("event_id", ev.ID, "namespace", ev.Namespace)
	now := d.now()
	start := now()
	outcomes := d.Dispatch(ctx, ev, false)

	var matched, created []string
	for _, outcome := range outcomes {
		if outcome.Matched {
			matched = append(matched, outcome.Ref.String())
		}
		if outcome.Err != nil {
			d.Metrics.DispatchFailed(FailureReason(outcome.Err))
			// Warn, not Error: the fault is usually in the template or the
			// event, and the server itself works.
			logger.Warn("template failed for event", "resource", outcome.Ref.String(), "error", outcome.Err)
			if d.Reporter != nil {
				d.Reporter.ReportFailure(outcome.meta, ev.ID, outcome.Err)
			}
			continue
		}
		if outcome.Workflow != nil {
			created = append(created, outcome.Workflow.Name)
		}
	}
	d.Metrics.EventProcessed(ev.Namespace, now().Sub(start).Seconds(), len(matched), len(created))
	logger.Debug("event processed", "templates", len(outcomes), "matched", matched, "workflows", created)
	return outcomes
}

// FailureReason classifies a resource's failure for the dispatch error
// counter.
func FailureReason(err error) string {
	if _, ok := errors.AsType[*matcher.EvalError](err); ok {
		return metrics.DispatchExpression
	}
	switch model.ErrorCode(err) {
	case model.CodePermissionDenied:
		return metrics.DispatchForbidden
	case model.CodeNotFound:
		return metrics.DispatchNotFound
	case model.CodeInvalid:
		return metrics.DispatchInvalid
	case model.CodeUnavailable:
		return metrics.DispatchUnavailable
	}
	return metrics.DispatchInternal
}

// failingSource is a TemplateSource that also lists the resources in scope
// that do not compile. *matcher.Catalog implements it.
type failingSource interface {
	FailingInScope(namespace string, mayUse func(namespace string) bool) []*matcher.CompileError
}

// DryRun evaluates ev as Dispatch does with dryRun set, and also returns an
// Outcome for every resource in scope whose expressions do not compile, so a
// user sees why it was skipped. Nothing is created.
func (d *Dispatcher) DryRun(ctx context.Context, ev model.Event) []Outcome {
	outcomes := d.Dispatch(ctx, ev, true)
	if source, ok := d.Templates.(failingSource); ok {
		for _, err := range source.FailingInScope(ev.Namespace, d.mayUse(ctx, ev)) {
			outcomes = append(outcomes, Outcome{Ref: err.Ref, Err: err})
		}
	}
	return outcomes
}

// Dispatch evaluates ev against every template and binding in scope and,
// unless dryRun is set, creates a Workflow for each match. It returns one
// Outcome per resource in scope, in the order of TemplateSource.InScope.
func (d *Dispatcher) Dispatch(ctx context.Context, ev model.Event, dryRun bool) []Outcome {
	env := matcher.NewEnv(ev)
	programs := d.Templates.InScope(ev.Namespace, d.mayUse(ctx, ev))

	outcomes := make([]Outcome, 0, len(programs))
	for _, program := range programs {
		outcome := Outcome{Ref: program.Meta().Ref, meta: program.Meta()}
		outcome.Matched, outcome.Workflow, outcome.Err = d.dispatchOne(ctx, ev, env, program, dryRun)
		outcomes = append(outcomes, outcome)
	}
	return outcomes
}

// dispatchOne is Dispatch for one resource.
func (d *Dispatcher) dispatchOne(ctx context.Context, ev model.Event, env *matcher.Env, program *matcher.Program, dryRun bool) (bool, *model.Workflow, error) {
	// Evaluate the event expression. A binding without submit matches and
	// creates nothing.
	matched, err := program.Match(env)
	if err != nil || !matched {
		return false, nil, err
	}
	if program.Binding != nil && program.Binding.Submit == nil {
		return true, nil, nil
	}

	// Compute the parameters and, for a binding, the metadata.
	parameters, err := program.Parameters(env)
	if err != nil {
		return true, nil, err
	}
	metadata, err := program.ComputeMetadata(env)
	if err != nil {
		return true, nil, err
	}

	// Read the template as the caller: a caller who may not read it cannot
	// start it, and its workflowMetadata goes on the Workflow.
	namespace, ref := submitTarget(ev, program)
	template, err := d.Cluster.GetTemplate(ctx, ev.Caller, namespace, ref)
	if err != nil {
		return true, nil, fmt.Errorf("read template for %s: %w", program.Meta().Ref, err)
	}

	// Build the Workflow and create it, unless this is a dry run.
	wf := d.newWorkflow(ev, program, template, namespace, parameters, metadata)
	if dryRun {
		return true, &wf, nil
	}
	created, err := d.create(ctx, ev.Caller, ev, wf)
	if err != nil {
		return true, nil, fmt.Errorf("create workflow from %s: %w", program.Meta().Ref, err)
	}
	return true, &created, nil
}

// submitTarget returns the namespace the Workflow is created in and the
// template it runs. A template submits itself; a cluster template's Workflow
// runs in the event's namespace. A binding submits the template it
// references, in its own namespace.
func submitTarget(ev model.Event, program *matcher.Program) (string, model.TemplateRef) {
	if program.Binding != nil {
		return program.Binding.Ref.Namespace, program.Binding.Submit.TemplateRef
	}
	ref := program.Template.Ref
	if ref.Kind == model.KindClusterWorkflowTemplate {
		return ev.Namespace, model.TemplateRef{Name: ref.Name, ClusterScope: true}
	}
	return ref.Namespace, model.TemplateRef{Name: ref.Name}
}

// mayUse returns the namespace filter for a cluster-scoped event. A failed
// check leaves the namespace out and is logged, because an event must never
// reach a namespace the caller was not shown to have access to.
func (d *Dispatcher) mayUse(ctx context.Context, ev model.Event) func(namespace string) bool {
	if d.Authorizer == nil {
		return ev.Caller.MayUse
	}
	return func(namespace string) bool {
		allowed, err := d.Authorizer.MayCreateWorkflows(ctx, ev.Caller, namespace)
		if err != nil {
			d.logger().Error("authorization check failed; namespace skipped", "event_id", ev.ID, "namespace", namespace, "error", err)
			return false
		}
		return allowed
	}
}

// newWorkflow builds the Workflow that program submits for ev, from
// template in namespace.
//
// Labels and annotations are layered: the template's workflowMetadata first,
// then a binding's own, then the labels wfevents sets, which a binding cannot
// override.
func (d *Dispatcher) newWorkflow(ev model.Event, program *matcher.Program, template model.Template, namespace string, parameters []model.ParameterValue, metadata matcher.WorkflowMetadata) model.Workflow {
	wf := model.Workflow{
		Namespace:   namespace,
		Name:        metadata.Name,
		Labels:      make(map[string]string),
		Annotations: make(map[string]string),
		TemplateRef: model.TemplateRef{Name: template.Ref.Name, ClusterScope: template.Ref.Kind == model.KindClusterWorkflowTemplate},
		Parameters:  parameters,
	}
	// The name is derived from the event and the resource unless the
	// binding names the Workflow, so a retry or a redelivery of the event
	// finds the Workflow it created instead of creating a second one.
	switch {
	case metadata.Name != "":
	case metadata.GenerateName != "":
		wf.GenerateName = metadata.GenerateName
		wf.Name = wf.GenerateName + nameSuffix(ev.ID, program.Meta().Ref)
	default:
		wf.GenerateName = template.Ref.Name + "-"
		wf.Name = wf.GenerateName + nameSuffix(ev.ID, program.Meta().Ref)
	}

	maps.Copy(wf.Labels, template.WorkflowMetadata.Labels)
	maps.Copy(wf.Annotations, template.WorkflowMetadata.Annotations)
	maps.Copy(wf.Labels, metadata.Labels)
	maps.Copy(wf.Annotations, metadata.Annotations)

	if program.Binding != nil {
		wf.Labels[model.LabelWorkflowEventBinding] = program.Binding.Ref.Name
	}
	if wf.TemplateRef.ClusterScope {
		wf.Labels[model.LabelClusterWorkflowTemplate] = template.Ref.Name
	} else {
		wf.Labels[model.LabelWorkflowTemplate] = template.Ref.Name
	}
	wf.Labels[model.LabelCreator] = LabelValue(ev.Caller.Subject)
	if ev.Caller.Email != "" {
		wf.Labels[model.LabelCreatorEmail] = LabelValue(ev.Caller.Email)
	}
	if ev.Caller.PreferredUsername != "" {
		wf.Labels[model.LabelCreatorPreferredUsername] = LabelValue(ev.Caller.PreferredUsername)
	}
	wf.Labels[model.LabelEventID] = LabelValue(ev.ID)
	if d.InstanceID != "" {
		wf.Labels[model.LabelInstanceID] = d.InstanceID
	}
	if len(wf.Annotations) == 0 {
		wf.Annotations = nil
	}
	return wf
}

// create creates wf, retrying transient errors with capped exponential
// backoff and jitter, or after the wait a Retry-After header asked for.
//
// Retrying cannot create a second Workflow, because wf's name is derived
// from the event and the resource: a create that reached the API server
// before its response was lost finds AlreadyExists on the retry. Such a
// Workflow is read back, and when its event ID label is this event's, it is
// the one this event created. Another Workflow of that name is a clash, an
// error with code model.CodeAlreadyExists.
func (d *Dispatcher) create(ctx context.Context, caller model.Identity, ev model.Event, wf model.Workflow) (model.Workflow, error) {
	backoff := d.Backoff
	if backoff.Attempts == 0 {
		backoff = DefaultBackoff
	}
	now := d.now()
	var deadline time.Time
	if backoff.Deadline > 0 {
		deadline = now().Add(backoff.Deadline)
	}

	wait := backoff.Initial
	for attempt := 1; ; attempt++ {
		created, err := d.Cluster.CreateWorkflow(ctx, caller, wf)
		if model.ErrorCode(err) == model.CodeAlreadyExists && wf.Name != "" {
			return d.existing(ctx, ev, wf, err)
		}
		if err == nil || model.ErrorCode(err) != model.CodeUnavailable || attempt >= backoff.Attempts {
			return created, err
		}

		// Wait as the API server asked, else back off with jitter, so
		// workers that failed together do not retry together.
		pause := jitter(wait)
		if apiErr, ok := errors.AsType[*model.Error](err); ok && apiErr.RetryAfter > 0 {
			pause = apiErr.RetryAfter
		}
		if !deadline.IsZero() && now().Add(pause).After(deadline) {
			return model.Workflow{}, fmt.Errorf("gave up retrying after %s: %w", backoff.Deadline, err)
		}
		d.logger().Warn("retrying workflow create", "event_id", ev.ID, "namespace", wf.Namespace, "name", wf.Name,
			"attempt", attempt, "wait", pause.String(), "error", err)

		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return model.Workflow{}, errors.Join(err, ctx.Err())
		case <-timer.C:
		}
		wait = min(2*wait, backoff.Max)
	}
}

// existing resolves an AlreadyExists: the Workflow of that name is this
// event's when it carries this event's ID.
func (d *Dispatcher) existing(ctx context.Context, ev model.Event, wf model.Workflow, createErr error) (model.Workflow, error) {
	found, err := d.Cluster.GetWorkflow(ctx, wf.Namespace, wf.Name)
	if err != nil {
		return model.Workflow{}, errors.Join(createErr, err)
	}
	if found.Labels[model.LabelEventID] == LabelValue(ev.ID) {
		d.logger().Debug("workflow already created for this event", "event_id", ev.ID, "namespace", wf.Namespace, "name", wf.Name)
		return found, nil
	}
	return model.Workflow{}, &model.Error{
		Code:    model.CodeAlreadyExists,
		Message: fmt.Sprintf("workflow %q in namespace %q already exists and was created by another event: make the name expression unique per event", wf.Name, wf.Namespace),
		Err:     createErr,
	}
}

// jitter returns a random duration between half of wait and wait.
func jitter(wait time.Duration) time.Duration {
	if wait <= 0 {
		return 0
	}
	return wait/2 + rand.N(wait/2+1)
}

func (d *Dispatcher) now() func() time.Time {
	if d.Now == nil {
		return time.Now
	}
	return d.Now
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// LabelValue makes s a valid Kubernetes label value, the way Argo writes the
// creator label. Each run of characters other than letters, digits, '-', '_'
// and '.' becomes one '-'. The result is cut to 63 characters, and leading or
// trailing '-', '_' and '.' are removed.
func LabelValue(s string) string {
	var b strings.Builder
	replaced := false
	for _, r := range s {
		valid := r == '-' || r == '_' || r == '.' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if valid {
			b.WriteRune(r)
			replaced = false
			continue
		}
		if !replaced {
			b.WriteByte('-')
			replaced = true
		}
	}

	value := b.String()
	if len(value) > 63 {
		value = value[:63]
	}
	return strings.Trim(value, "-_.")
}

// nameSuffix derives ten lowercase letters and digits from the event ID and
// the resource, about 50 bits, so two events, or two resources matching one
// event, practically never get the same Workflow name.
func nameSuffix(eventID string, ref model.ResourceRef) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + ref.String()))
	encoded := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).EncodeToString(sum[:])
	return encoded[:10]
}
