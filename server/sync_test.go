package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

// dispatcherFunc adapts a function to server.Dispatcher.
type dispatcherFunc func(ctx context.Context, ev model.Event) []workers.Outcome

func (f dispatcherFunc) Run(ctx context.Context, ev model.Event) []workers.Outcome {
	return f(ctx, ev)
}

func templateRef(name string) model.ResourceRef {
	return model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: "argo", Name: name}
}

func TestSyncDispatch(t *testing.T) {
	created := &model.Workflow{Namespace: "argo", Name: "build-x7k2p"}
	forbidden := &model.Error{Code: model.CodePermissionDenied, Message: "create workflow in namespace \"argo\" failed", Err: errors.New("workflows is forbidden: secret detail")}
	evalErr := &matcher.EvalError{Ref: templateRef("lint"), Field: "spec.event.expression", Err: errors.New("cannot fetch b from <nil>")}

	cases := []struct {
		name          string
		outcomes      []workers.Outcome
		wantStatus    int
		wantBody      string
		wantNotInBody string
	}{
		{
			name:       "created",
			outcomes:   []workers.Outcome{{Ref: templateRef("build"), Matched: true, Workflow: created}, {Ref: templateRef("other")}},
			wantStatus: http.StatusOK,
			wantBody:   `{"eventId":"event-1","workflows":[{"namespace":"argo","name":"build-x7k2p","resource":"WorkflowTemplate/argo/build"}]}`,
		},
		{
			name:       "nothing matched",
			outcomes:   []workers.Outcome{{Ref: templateRef("other")}},
			wantStatus: http.StatusOK,
			wantBody:   `{"eventId":"event-1","workflows":[]}`,
		},
		{
			name: "forbidden create is 403",
			outcomes: []workers.Outcome{
				{Ref: templateRef("build"), Matched: true, Workflow: created},
				{Ref: templateRef("deploy"), Matched: true, Err: forbidden},
			},
			wantStatus: http.StatusForbidden,
			wantBody: `{"eventId":"event-1","workflows":[{"namespace":"argo","name":"build-x7k2p","resource":"WorkflowTemplate/argo/build"}],
				"failures":[{"resource":"WorkflowTemplate/argo/deploy","status":403,"code":7,"message":"create workflow in namespace \"argo\" failed"}]}`,
			wantNotInBody: "secret detail",
		},
		{
			name:       "expression error is 400",
			outcomes:   []workers.Outcome{{Ref: templateRef("lint"), Err: evalErr}},
			wantStatus: http.StatusBadRequest,
			wantBody: `{"eventId":"event-1","workflows":[],
				"failures":[{"resource":"WorkflowTemplate/argo/lint","status":400,"code":3,"message":"evaluate spec.event.expression of WorkflowTemplate/argo/lint: cannot fetch b from \u003cnil\u003e"}]}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dispatched []model.Event
			h := newHarness(t, func(cfg *server.Config) {
				cfg.SyncDispatch = true
				cfg.SyncDispatch = true
				cfg.Dispatcher = dispatcherFunc(func(ctx context.Context, ev model.Event) []workers.Outcome {
					_, hasDeadline := ctx.Deadline()
					assert.True(t, hasDeadline, "synchronous work is bounded")
					dispatched = append(dispatched, ev)
					return tc.outcomes
				})
			})
			h.expectCaller(argoCaller)

			rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{"a":1}`)))

			assert.Equal(t, tc.wantStatus, rec.Code)
			assert.JSONEq(t, tc.wantBody, rec.Body.String())
			assert.Equal(t, "event-1", rec.Header().Get("X-Event-Id"))
			require.Len(t, dispatched, 1, "the event is dispatched in the request, not queued")
			if tc.wantNotInBody != "" {
				assert.NotContains(t, rec.Body.String(), tc.wantNotInBody, "internal causes stay in the log")
			}
		})
	}
}

func TestSyncDispatchSurvivesDisconnect(t *testing.T) {
	ctx, cancelRequest := context.WithCancel(t.Context())
	defer cancelRequest()
	var errAfterDisconnect error
	h := newHarness(t, func(cfg *server.Config) {
		cfg.SyncDispatch = true
		cfg.Dispatcher = dispatcherFunc(func(ctx context.Context, _ model.Event) []workers.Outcome {
			// The sender goes away while its Workflows are being created.
			cancelRequest()
			errAfterDisconnect = ctx.Err()
			return nil
		})
	})
	h.expectCaller(argoCaller)

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)).WithContext(ctx))

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.NoError(t, errAfterDisconnect, "dispatching must not inherit the request's cancellation")
}

func TestSyncDispatchLimit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := newHarness(t, func(cfg *server.Config) {
		cfg.SyncLimit = 1
		cfg.SyncDispatch = true
		cfg.Dispatcher = dispatcherFunc(func(context.Context, model.Event) []workers.Outcome {
			entered <- struct{}{}
			<-release
			return nil
		})
	})
	h.auth.EXPECT().Authenticate(mock.Anything, model.Token(testToken)).Return(argoCaller, nil).Twice()

	first := make(chan int, 1)
	go func() {
		rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))
		first <- rec.Code
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first request never reached the dispatcher")
	}

	rec := h.serve(t, newEventRequest(t, http.MethodPost, "/api/v1/events/argo", strings.NewReader(`{}`)))
	close(release)

	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	var body server.ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Contains(t, body.Message, "1 synchronous events are in progress")
	select {
	case code := <-first:
		assert.Equal(t, http.StatusOK, code)
	case <-time.After(10 * time.Second):
		t.Fatal("first request did not finish")
	}
}
