package workers_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/workers"
)

// TestFaultInjection drives the dispatcher against client-go's fake cluster
// with reactors that fail Workflow creates, and counts the Workflows stored.
func TestFaultInjection(t *testing.T) {
	workflows := schema.GroupResource{Group: "argoproj.io", Resource: "workflows"}
	cases := []struct {
		name      string
		failures  []error // returned by the first creates, in order
		lostReply bool    // the first create is stored, but its reply is an error
		wantCalls int32
		wantError bool
	}{
		{name: "transient then success", failures: []error{apierrors.NewInternalError(errors.New("etcd leader changed")), apierrors.NewTooManyRequests("slow down", 0)}, wantCalls: 3},
		{name: "permanent is not retried", failures: []error{apierrors.NewForbidden(workflows, "", errors.New("denied"))}, wantCalls: 1, wantError: true},
		{name: "invalid is not retried", failures: []error{apierrors.NewInvalid(schema.GroupKind{Group: "argoproj.io", Kind: "Workflow"}, "x", nil)}, wantCalls: 1, wantError: true},
		{name: "lost reply then AlreadyExists", lostReply: true, wantCalls: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newBindingHarness(t)
			h.dispatcher.Backoff = workers.Backoff{Attempts: 5, Initial: time.Millisecond, Max: 2 * time.Millisecond}
			var calls atomic.Int32
			h.fakeClient.PrependReactor("create", "workflows", func(action k8stesting.Action) (bool, runtime.Object, error) {
				call := calls.Add(1)
				if tc.lostReply && call == 1 {
					// Store the Workflow, as the API server did, and lose the reply.
					obj := action.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
					require.NoError(t, h.fakeClient.Tracker().Create(action.GetResource(), obj.DeepCopy(), obj.GetNamespace()))
					return true, nil, apierrors.NewServerTimeout(workflows, "create", 1)
				}
				if int(call) <= len(tc.failures) {
					return true, nil, tc.failures[call-1]
				}
				return false, nil, nil
			})
			ev := pullRequestEvent(t)
			ev.Namespace = "solo"
			require.NoError(t, h.catalog.UpsertBinding(soloBinding()))

			outcomes := h.dispatcher.Dispatch(t.Context(), ev, false)

			require.Len(t, outcomes, 1)
			assert.Equal(t, tc.wantCalls, calls.Load(), "create calls")
			stored, err := h.fakeClient.Resource(kube.WorkflowsResource).Namespace("solo").List(t.Context(), metav1.ListOptions{})
			require.NoError(t, err)
			if tc.wantError {
				assert.Error(t, outcomes[0].Err)
				assert.Empty(t, stored.Items)
				return
			}
			require.NoError(t, outcomes[0].Err)
			assert.Len(t, stored.Items, 1, "exactly one Workflow")
		})
	}
}

// TestRedeliveredEventCreatesNothingNew dispatches the same event twice, as
// a redelivered webhook with the same delivery ID would be.
func TestRedeliveredEventCreatesNothingNew(t *testing.T) {
	h := newBindingHarness(t)
	require.NoError(t, h.catalog.UpsertBinding(soloBinding()))
	ev := pullRequestEvent(t)
	ev.Namespace = "solo"

	first := h.dispatcher.Dispatch(t.Context(), ev, false)
	again := h.dispatcher.Dispatch(t.Context(), ev, false)

	require.Len(t, first, 1)
	require.Len(t, again, 1)
	require.NoError(t, again[0].Err, "the redelivery finds the Workflow it made")
	assert.Equal(t, first[0].Workflow.Name, again[0].Workflow.Name)
	stored, err := h.fakeClient.Resource(kube.WorkflowsResource).Namespace("solo").List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, stored.Items, 1)
}
