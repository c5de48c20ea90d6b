package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// newTestRecorder returns a Recorder that writes to a fake clientset, and
// the clientset. The recorder is shut down when the test ends.
func newTestRecorder(t testing.TB) (*Recorder, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset()
	recorder := NewRecorder(client, "wfevents", slog.New(slog.NewTextHandler(t.Output(), nil)))
	t.Cleanup(recorder.Shutdown)
	return recorder, client
}

// waitForEvent returns the one Event the recorder has written to client. The
// broadcaster writes asynchronously, so it polls for a bounded time.
func waitForEvent(t testing.TB, client *fake.Clientset) corev1.Event {
	t.Helper()
	var events []corev1.Event
	require.Eventually(t, func() bool {
		list, err := client.CoreV1().Events("").List(t.Context(), metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		events = list.Items
		return true
	}, 5*time.Second, 5*time.Millisecond, "no Event was written")
	require.Len(t, events, 1)
	return events[0]
}

var buildTemplate = model.Template{
	Ref:             model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: "build"},
	UID:             "uid-build",
	ResourceVersion: "7",
}

var sharedTemplate = model.Template{
	Ref:             model.ResourceRef{Kind: model.KindClusterWorkflowTemplate, Name: "shared"},
	UID:             "uid-shared",
	ResourceVersion: "3",
}

func TestRecorderReportCompileError(t *testing.T) {
	recorder, client := newTestRecorder(t)

	recorder.ReportCompileError(buildTemplate.Meta(), errors.New(`compile spec.event.expression: unknown name evnt`))

	event := waitForEvent(t, client)
	assert.Equal(t, corev1.EventTypeWarning, event.Type)
	assert.Equal(t, ReasonExpressionInvalid, event.Reason)
	assert.Equal(t, "argo", event.Namespace)
	assert.Equal(t, corev1.ObjectReference{
		APIVersion:      "argoproj.io/v1alpha1",
		Kind:            "WorkflowTemplate",
		Namespace:       "argo",
		Name:            "build",
		UID:             "uid-build",
		ResourceVersion: "7",
	}, event.InvolvedObject)
	assert.Equal(t, "compile spec.event.expression: unknown name evnt", event.Message)
	assert.Equal(t, "wfevents", event.Source.Component)
}

func TestRecorderReportFailure(t *testing.T) {
	evalErr := &matcher.EvalError{Ref: buildTemplate.Ref, Field: "spec.event.expression", Err: errors.New("want bool, got string")}
	createErr := &model.Error{Code: model.CodePermissionDenied, Message: "create workflow failed", Err: errors.New("forbidden")}
	cases := []struct {
		name          string
		template      model.Template
		err           error
		wantReason    string
		wantNamespace string
		wantObject    corev1.ObjectReference
	}{
		{
			name:          "evaluation error",
			template:      buildTemplate,
			err:           fmt.Errorf("dispatch: %w", evalErr),
			wantReason:    ReasonExpressionInvalid,
			wantNamespace: "argo",
			wantObject:    corev1.ObjectReference{APIVersion: "argoproj.io/v1alpha1", Kind: "WorkflowTemplate", Namespace: "argo", Name: "build", UID: "uid-build", ResourceVersion: "7"},
		},
		{
			name:          "create error",
			template:      buildTemplate,
			err:           createErr,
			wantReason:    ReasonDispatchFailed,
			wantNamespace: "argo",
			wantObject:    corev1.ObjectReference{APIVersion: "argoproj.io/v1alpha1", Kind: "WorkflowTemplate", Namespace: "argo", Name: "build", UID: "uid-build", ResourceVersion: "7"},
		},
		{
			name:          "cluster template goes to default namespace",
			template:      sharedTemplate,
			err:           createErr,
			wantReason:    ReasonDispatchFailed,
			wantNamespace: "default",
			wantObject:    corev1.ObjectReference{APIVersion: "argoproj.io/v1alpha1", Kind: "ClusterWorkflowTemplate", Name: "shared", UID: "uid-shared", ResourceVersion: "3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recorder, client := newTestRecorder(t)

			recorder.ReportFailure(tc.template.Meta(), "ev-42", tc.err)

			event := waitForEvent(t, client)
			assert.Equal(t, corev1.EventTypeWarning, event.Type)
			assert.Equal(t, tc.wantReason, event.Reason)
			assert.Equal(t, tc.wantNamespace, event.Namespace)
			assert.Equal(t, tc.wantObject, event.InvolvedObject)
			assert.Contains(t, event.Message, "event ev-42")
			assert.Contains(t, event.Message, tc.err.Error())
		})
	}
}
