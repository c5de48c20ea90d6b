package model_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/wfevents/wfevents/model"
)

func TestIdentityMayUse(t *testing.T) {
	cases := []struct {
		name      string
		identity  model.Identity
		namespace string
		want      bool
	}{
		{name: "listed namespace", identity: model.Identity{Namespaces: []string{"a", "b"}}, namespace: "b", want: true},
		{name: "other namespace", identity: model.Identity{Namespaces: []string{"a"}}, namespace: "c", want: false},
		{name: "scoped on empty", identity: model.Identity{Namespaces: []string{"a"}}, namespace: "", want: false},
		{name: "scoped with empty entry", identity: model.Identity{Namespaces: []string{""}}, namespace: "", want: false},
		{name: "cluster on empty", identity: model.Identity{AllNamespaces: true}, namespace: "", want: true},
		{name: "cluster on any", identity: model.Identity{AllNamespaces: true}, namespace: "z", want: true},
		{name: "no namespaces", identity: model.Identity{}, namespace: "a", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.identity.MayUse(tc.namespace))
		})
	}
}

func TestTokenRedacted(t *testing.T) {
	token := model.Token("s3cret-value")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))

	logger.Info("auth", "token", token)
	printed := fmt.Sprintf("%s %v %+v %#v", token, token, token, token)

	assert.NotContains(t, logs.String(), "s3cret")
	assert.Contains(t, logs.String(), "REDACTED")
	assert.NotContains(t, printed, "s3cret")
}

func TestEventLogValueOmitsPayload(t *testing.T) {
	ev := model.Event{ID: "e1", Namespace: "argo", Payload: map[string]any{"email": "person1@example.invalid"}, Headers: map[string][]string{"X-Secret": {"v"}}}
	var logs bytes.Buffer

	slog.New(slog.NewTextHandler(&logs, nil)).Info("event", "event", ev)

	assert.Contains(t, logs.String(), "event.event_id=e1")
	assert.NotContains(t, logs.String(), "person1@example.invalid")
	assert.NotContains(t, logs.String(), "X-Secret")
}

func TestErrorCodeAndMessage(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1:443: connection refused")
	wrapped := fmt.Errorf("create workflow: %w", &model.Error{Code: model.CodeUnavailable, Message: "cluster unavailable", Err: cause})

	assert.Equal(t, model.CodeUnavailable, model.ErrorCode(wrapped))
	assert.Equal(t, "cluster unavailable", model.ErrorMessage(wrapped))
	assert.ErrorIs(t, wrapped, cause)
	assert.Contains(t, wrapped.Error(), "connection refused", "logs see the cause")

	assert.Equal(t, model.CodeInternal, model.ErrorCode(cause))
	assert.Equal(t, "internal error", model.ErrorMessage(cause), "a plain error never reaches the client")
}
