package kube

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wfevents/wfevents/model"
)

func TestValidateWorkflow(t *testing.T) {
	cases := []struct {
		name      string
		workflow  model.Workflow
		wantError string
	}{
		{name: "valid", workflow: model.Workflow{GenerateName: "build-", Labels: map[string]string{"team": "a"}}},
		{name: "valid name", workflow: model.Workflow{Name: "pr-2-ec26c3e"}},
		{name: "uppercase name", workflow: model.Workflow{Name: "wf-UPPER_case!"}, wantError: `metadata.name "wf-UPPER_case!"`},
		{name: "long name", workflow: model.Workflow{Name: strings.Repeat("a", 300)}, wantError: "must be no more than 253 characters"},
		{name: "long generateName", workflow: model.Workflow{GenerateName: strings.Repeat("a", 250) + "-"}, wantError: "metadata.generateName"},
		{name: "bad label value", workflow: model.Workflow{GenerateName: "b-", Labels: map[string]string{"ref": "has space/and!bad"}}, wantError: `label value of ref "has space/and!bad"`},
		{name: "bad label key", workflow: model.Workflow{GenerateName: "b-", Labels: map[string]string{"bad key": "x"}}, wantError: `label key "bad key"`},
		{name: "bad annotation key", workflow: model.Workflow{GenerateName: "b-", Annotations: map[string]string{"/x": "anything goes"}}, wantError: `annotation key "/x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateWorkflow(tc.workflow)

			if tc.wantError == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, model.CodeInvalid, model.ErrorCode(err))
			assert.Contains(t, model.ErrorMessage(err), tc.wantError)
		})
	}
}

func TestClientRejectsInvalidWorkflow(t *testing.T) {
	dyn := NewFakeDynamicClient()
	client := NewClient(dyn)

	_, err := client.CreateWorkflow(t.Context(), model.Identity{Subject: "admin"}, model.Workflow{Namespace: "argo", Name: "Bad_Name"})

	require.Error(t, err)
	assert.Equal(t, model.CodeInvalid, model.ErrorCode(err))
	assert.Empty(t, dyn.Actions(), "nothing reaches the cluster")
}
