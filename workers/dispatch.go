package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// WorkflowCreator creates Workflows in the cluster on behalf of a caller, so
// that the cluster's access control applies to the caller. An error whose
// code is model.CodeUnavailable is transient and may be retried, and any
// other is final.
type WorkflowCreator interface {
	CreateWorkflow(ctx context.Context, caller model.Identity, wf model.Workflow) (model.Workflow, error)
}

// FailureReporter makes a template's failure for an event visible where the
// template's owner looks, such as a Kubernetes Event on the template.
type FailureReporter interface {
	ReportFailure(t model.Template, eventID string, err error)
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

	template model.Template
}

// Backoff sets how transient create errors are retried.
type Backoff struct {
	Attempts int           // total attempts, at least 1
	Initial  time.Duration // wait before the second attempt
	Max      time.Duration // cap on any one wait
}

// DefaultBackoff retries for about three seconds in all.
var DefaultBackoff = Backoff{Attempts: 5, Initial: 200 * time.Millisecond, Max: 2 * time.Second}

// Dispatcher is the sync function of the workers: it evaluates one event
// against the templates in scope and creates a Workflow for every match.
// Its fields must not change after first use. It is safe for concurrent use.
type Dispatcher struct {
	Templates TemplateSource
	Creator   WorkflowCreator

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
}

// Process dispatches ev and logs the outcome. It implements Processor.
func (d *Dispatcher) Process(ctx context.Context, ev model.Event) {
	logger := d.logger().With("event_id", ev.ID, "namespace", ev.Namespace)
	outcomes := d.Dispatch(ctx, ev, false)

	var matched, created []string
	for _, outcome := range outcomes {
		if outcome.Err != nil {
			// Warn, not Error: the fault is usually in the template or the
			// event, and the server itself works.
			logger.Warn("template failed for event", "resource", outcome.Ref.String(), "error", outcome.Err)
			if d.Reporter != nil {
				d.Reporter.ReportFailure(outcome.template, ev.ID, outcome.Err)
			}
			continue
		}
		if outcome.Matched {
			matched = append(matched, outcome.Ref.String())
		}
		if outcome.Workflow != nil {
			created = append(created, outcome.Workflow.Name)
		}
	}
	logger.Debug("event processed", "templates", len(outcomes), "matched", matched, "workflows", created)
}

// Dispatch evaluates ev against every template in scope and, unless dryRun
// is set, creates a Workflow for each match. It returns one Outcome per
// template in scope, in the order of TemplateSource.InScope.
func (d *Dispatcher) Dispatch(ctx context.Context, ev model.Event, dryRun bool) []Outcome {
	env := matcher.NewEnv(ev)
	programs := d.Templates.InScope(ev.Namespace, d.mayUse(ctx, ev))

	outcomes := make([]Outcome, 0, len(programs))
	for _, program := range programs {
		outcome := Outcome{Ref: program.Template.Ref, template: program.Template}

		// Evaluate the event expression, then the parameters.
		outcome.Matched, outcome.Err = program.Match(env)
		if outcome.Err != nil || !outcome.Matched {
			outcomes = append(outcomes, outcome)
			continue
		}
		parameters, err := program.Parameters(env)
		if err != nil {
			outcome.Err = err
			outcomes = append(outcomes, outcome)
			continue
		}

		// Build the Workflow and create it, unless this is a dry run.
		wf := d.newWorkflow(ev, program.Template, parameters)
		if !dryRun {
			wf, err = d.create(ctx, ev.Caller, wf)
			if err != nil {
				outcome.Err = fmt.Errorf("create workflow from %s: %w", program.Template.Ref, err)
				outcomes = append(outcomes, outcome)
				continue
			}
		}
		outcome.Workflow = &wf
		outcomes = append(outcomes, outcome)
	}
	return outcomes
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

// newWorkflow builds the Workflow that t submits for ev.
func (d *Dispatcher) newWorkflow(ev model.Event, t model.Template, parameters []model.ParameterValue) model.Workflow {
	wf := model.Workflow{
		Namespace:    t.Ref.Namespace,
		GenerateName: t.Ref.Name + "-",
		Labels:       maps.Clone(t.WorkflowMetadata.Labels),
		Annotations:  maps.Clone(t.WorkflowMetadata.Annotations),
		TemplateRef:  model.TemplateRef{Name: t.Ref.Name},
		Parameters:   parameters,
	}
	if wf.Labels == nil {
		wf.Labels = make(map[string]string)
	}

	// A cluster template's Workflow runs in the event's namespace.
	if t.Ref.Kind == model.KindClusterWorkflowTemplate {
		wf.Namespace = ev.Namespace
		wf.TemplateRef.ClusterScope = true
		wf.Labels[model.LabelClusterWorkflowTemplate] = t.Ref.Name
	} else {
		wf.Labels[model.LabelWorkflowTemplate] = t.Ref.Name
	}

	wf.Labels[model.LabelCreator] = LabelValue(ev.Caller.Subject)
	wf.Labels[model.LabelEventID] = LabelValue(ev.ID)
	if d.InstanceID != "" {
		wf.Labels[model.LabelInstanceID] = d.InstanceID
	}
	return wf
}

// create creates wf, retrying transient errors with capped exponential
// backoff.
//
// NOTE: a retry after a timeout can create a second Workflow if the first
// attempt reached the API server, because the name is generated by the
// server. Only errors with code model.CodeUnavailable are retried, and the
// Kubernetes adapter gives that code only to 429 and 503 responses, which
// reject the request before it is stored.
func (d *Dispatcher) create(ctx context.Context, caller model.Identity, wf model.Workflow) (model.Workflow, error) {
	backoff := d.Backoff
	if backoff.Attempts == 0 {
		backoff = DefaultBackoff
	}

	wait := backoff.Initial
	for attempt := 1; ; attempt++ {
		created, err := d.Creator.CreateWorkflow(ctx, caller, wf)
		if err == nil || model.ErrorCode(err) != model.CodeUnavailable || attempt >= backoff.Attempts {
			return created, err
		}
		d.logger().Warn("retrying workflow create", "namespace", wf.Namespace, "generate_name", wf.GenerateName, "attempt", attempt, "error", err)

		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return model.Workflow{}, errors.Join(err, ctx.Err())
		case <-timer.C:
		}
		wait = min(2*wait, backoff.Max)
	}
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
