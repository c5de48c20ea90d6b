package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/workers"

	"github.com/wfevents/wfevents/model"
)

// statusByCode maps error codes to HTTP statuses as Argo's gateway does.
var statusByCode = map[model.Code]int{
	model.CodeInvalid:           http.StatusBadRequest,
	model.CodeDeadlineExceeded:  http.StatusGatewayTimeout,
	model.CodeNotFound:          http.StatusNotFound,
	model.CodeAlreadyExists:     http.StatusConflict,
	model.CodePermissionDenied:  http.StatusForbidden,
	model.CodeResourceExhausted: http.StatusRequestEntityTooLarge,
	model.CodeUnimplemented:     http.StatusMethodNotAllowed,
	model.CodeInternal:          http.StatusInternalServerError,
	model.CodeUnavailable:       http.StatusServiceUnavailable,
	model.CodeUnauthenticated:   http.StatusUnauthorized,
}

// statusOf returns the HTTP status for code.
func statusOf(code model.Code) int {
	if status, ok := statusByCode[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// ErrorResponse is the error body, in the shape Argo's gateway writes.
type ErrorResponse struct {
	Code    model.Code `json:"code"`
	Message string     `json:"message"`
}

// writeError sends err's safe message and logs its internal cause. Only
// internal errors are logged above Debug, because client errors are the
// client's to fix and can be sent at any rate.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := model.ErrorCode(err)
	status := statusOf(code)
	if strings.HasPrefix(r.URL.EscapedPath(), eventsPrefix) {
		s.cfg.Metrics.EventRejected(rejectReason(status, err))
	}

	// Every 503 is temporary: a full pipeline, a shutdown in progress or a
	// slow authenticator.
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	} else {
		s.cfg.Logger.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	}
	writeJSON(w, status, ErrorResponse{Code: code, Message: model.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	encoder := json.NewEncoder(w)
	encoder.SetEscapeHTML(false)
	// The status is sent, so a failed write can only mean the client left.
	_ = encoder.Encode(body)
}

// rejectReason classifies a rejected event for the rejection counter.
func rejectReason(status int, err error) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return metrics.RejectAuth
	case status == http.StatusRequestEntityTooLarge:
		return metrics.RejectTooLarge
	case status == http.StatusServiceUnavailable && errors.Is(err, workers.ErrFull):
		return metrics.RejectQueueFull
	case status == http.StatusServiceUnavailable && errors.Is(err, workers.ErrShuttingDown):
		return metrics.RejectShuttingDown
	case status == http.StatusServiceUnavailable:
		return metrics.RejectUnavailable
	case status >= 500:
		return metrics.RejectInternal
	}
	return metrics.RejectBadRequest
}
