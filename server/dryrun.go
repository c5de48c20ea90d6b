package server

import (
	"context"
	"net/http"

	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

// DryRunner evaluates an event without creating anything. *workers.Dispatcher
// implements it.
type DryRunner interface {
	DryRun(ctx context.Context, ev model.Event) []workers.Outcome
}

// DryRunResponse is the body of a dry run: one result per resource in scope.
type DryRunResponse struct {
	EventID   string         `json:"eventId"`
	DryRun    bool           `json:"dryRun"`
	Resources []DryRunResult `json:"resources"`
}

// DryRunResult is the evaluation of an event against one template or binding.
type DryRunResult struct {
	Kind      model.Kind `json:"kind"`
	Namespace string     `json:"namespace,omitempty"`
	Name      string     `json:"name"`
	Matched   bool       `json:"matched"`

	// Error is the compile, evaluation or permission error, if any.
	Error string `json:"error,omitempty"`

	// Workflow is the manifest that would be created.
	Workflow any `json:"workflow,omitempty"`
}

// dryRun handles ?dryRun=All: the event went through the same admission as
// a real one, and is evaluated, with templates read as the caller, but
// nothing is created or queued.
func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, ev model.Event) {
	runner, ok := s.cfg.Dispatcher.(DryRunner)
	if !ok {
		s.writeError(w, r, model.Errorf(model.CodeUnimplemented, "dry run is not available on this server"))
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.SyncTimeout)
	defer cancel()
	outcomes := runner.DryRun(ctx, ev)

	response := DryRunResponse{EventID: ev.ID, DryRun: true, Resources: make([]DryRunResult, 0, len(outcomes))}
	for _, outcome := range outcomes {
		result := DryRunResult{
			Kind:      outcome.Ref.Kind,
			Namespace: outcome.Ref.Namespace,
			Name:      outcome.Ref.Name,
			Matched:   outcome.Matched,
		}
		if outcome.Err != nil {
			result.Error = OutcomeMessage(outcome.Err)
		}
		if outcome.Workflow != nil {
			result.Workflow = s.cfg.RenderWorkflow(*outcome.Workflow)
		}
		response.Resources = append(response.Resources, result)
	}

	s.cfg.Logger.Debug("dry run evaluated", "event", ev, "resources", len(response.Resources))
	w.Header().Set("X-Event-Id", ev.ID)
	writeJSON(w, http.StatusOK, response)
}
