package kube

import (
	"errors"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// Reasons of the Warning Events wfevents records on templates.
const (
	ReasonExpressionInvalid = "WorkflowEventExpressionInvalid"
	ReasonDispatchFailed    = "WorkflowEventDispatchFailed"
)

// Recorder records Kubernetes Warning Events on templates, so a template's
// owner sees with kubectl describe why an event did not start it.
type Recorder struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewRecorder returns a Recorder that writes Events through client, as the
// component named component.
func NewRecorder(client kubernetes.Interface, component string, logger *slog.Logger) *Recorder {
	broadcaster := record.NewBroadcaster()
	broadcaster.StartStructuredLogging(0)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &Recorder{
		broadcaster: broadcaster,
		recorder:    broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component}),
	}
}

// Shutdown flushes and stops the recorder.
func (r *Recorder) Shutdown() {
	r.broadcaster.Shutdown()
}

// ReportFailure records that t failed for the event eventID.
func (r *Recorder) ReportFailure(t model.Template, eventID string, err error) {
	reason := ReasonDispatchFailed
	if _, ok := errors.AsType[*matcher.EvalError](err); ok {
		reason = ReasonExpressionInvalid
	}
	r.recorder.Eventf(templateReference(t), corev1.EventTypeWarning, reason, "event %s: %v", eventID, err)
}

// ReportCompileError records that a template version does not compile.
func (r *Recorder) ReportCompileError(t model.Template, err error) {
	r.recorder.Eventf(templateReference(t), corev1.EventTypeWarning, ReasonExpressionInvalid, "%v", err)
}

func templateReference(t model.Template) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion:      apiVersion,
		Kind:            string(t.Ref.Kind),
		Namespace:       t.Ref.Namespace,
		Name:            t.Ref.Name,
		UID:             types.UID(t.UID),
		ResourceVersion: t.ResourceVersion,
	}
}
