package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

// Dispatcher processes one event at once, for the synchronous mode, and
// reports failures and metrics as the workers do. *workers.Dispatcher
// implements it.
type Dispatcher interface {
	Run(ctx context.Context, ev model.Event) []workers.Outcome
}

// SyncResponse is the body of a synchronous submission: the Workflows the
// event created and the resources that failed.
type SyncResponse struct {
	EventID   string            `json:"eventId"`
	Workflows []CreatedWorkflow `json:"workflows"`
	Failures  []Failure         `json:"failures,omitempty"`
}

// CreatedWorkflow names one Workflow an event created.
type CreatedWorkflow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Resource  string `json:"resource"` // the template or binding that matched
}

// Failure is one resource that failed for the event, with the status and
// code its error maps to.
type Failure struct {
	Resource string     `json:"resource"`
	Status   int        `json:"status"`
	Code     model.Code `json:"code"`
	Message  string     `json:"message"`
}

// dispatchNow processes ev in the request, bounded by Config.SyncTimeout and
// by the number of synchronous requests allowed at once, and sends the
// result. The status is 200 when nothing failed, else the status of the
// first failure, so a Kubernetes 403 on create reaches the sender as 403.
func (s *Server) dispatchNow(w http.ResponseWriter, r *http.Request, ev model.Event) {
	select {
	case s.syncSlots <- struct{}{}:
		defer func() { <-s.syncSlots }()
	default:
		s.writeError(w, r, model.Errorf(model.CodeUnavailable, "%d synchronous events are in progress: retry later", cap(s.syncSlots)))
		return
	}

	// The work must not stop because the sender disconnects half-way, so it
	// keeps the request's values but not its cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.SyncTimeout)
	defer cancel()
	outcomes := s.cfg.Dispatcher.Run(ctx, ev)

	response := SyncResponse{EventID: ev.ID, Workflows: []CreatedWorkflow{}}
	status := http.StatusOK
	for _, outcome := range outcomes {
		if outcome.Workflow != nil {
			response.Workflows = append(response.Workflows, CreatedWorkflow{
				Namespace: outcome.Workflow.Namespace,
				Name:      outcome.Workflow.Name,
				Resource:  outcome.Ref.String(),
			})
		}
		if outcome.Err == nil {
			continue
		}

		code := outcomeCode(outcome.Err)
		failure := Failure{Resource: outcome.Ref.String(), Status: statusOf(code), Code: code, Message: OutcomeMessage(outcome.Err)}
		response.Failures = append(response.Failures, failure)
		if status == http.StatusOK {
			status = failure.Status
		}
	}

	w.Header().Set("X-Event-Id", ev.ID)
	writeJSON(w, status, response)
}

// outcomeCode classifies a resource's failure. An expression that fails on
// the event is the event's or the resource's to fix, so it is invalid input,
// not a fault of the server.
func outcomeCode(err error) model.Code {
	if _, ok := errors.AsType[*matcher.EvalError](err); ok {
		return model.CodeInvalid
	}
	return model.ErrorCode(err)
}

// OutcomeMessage returns a message about a resource's failure that is safe
// for the sender. An expression error is the resource author's text and safe
// to show, while other errors show only their client-safe part.
func OutcomeMessage(err error) string {
	if evalErr, ok := errors.AsType[*matcher.EvalError](err); ok {
		return evalErr.Error()
	}
	if compileErr, ok := errors.AsType[*matcher.CompileError](err); ok {
		return compileErr.Error()
	}
	return model.ErrorMessage(err)
}
