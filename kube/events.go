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

// Recorder records Kubernetes Warning Events on templates and bindings, so
// their owner sees with kubectl describe why an event did not start them.
type Recorder struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewRecorder returns a Recorder that writes Events through client, as the
// component named component, and logs each at Debug. A nil logger discards.
func NewRecorder(client kubernetes.Interface, component string, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartEventWatcher(func(event *corev1.Event) {
		logger.Debug("kubernetes event recorded", "reason", event.Reason, "namespace", event.InvolvedObject.Namespace,
			"resource", event.InvolvedObject.Kind+"/"+event.InvolvedObject.Name, "message", event.Message)
	})
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

// ReportFailure records that a resource failed for the event eventID.
func (r *Recorder) ReportFailure(resource model.ObjectMeta, eventID string, err error) {
	reason := ReasonDispatchFailed
	if _, ok := errors.AsType[*matcher.EvalError](err); ok {
		reason = ReasonExpressionInvalid
	}
	r.recorder.Eventf(objectReference(resource), corev1.EventTypeWarning, reason, "event %s: %v", eventID, err)
}

// ReportCompileError records that a resource version does not compile.
func (r *Recorder) ReportCompileError(resource model.ObjectMeta, err error) {
	r.recorder.Eventf(objectReference(resource), corev1.EventTypeWarning, ReasonExpressionInvalid, "%v", err)
}

func objectReference(resource model.ObjectMeta) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion:      apiVersion,
		Kind:            string(resource.Ref.Kind),
		Namespace:       resource.Ref.Namespace,
		Name:            resource.Ref.Name,
		UID:             types.UID(resource.UID),
		ResourceVersion: resource.ResourceVersion,
	}
}
