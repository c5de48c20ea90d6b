package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

// NewFakeDynamicClient returns client-go's fake dynamic client seeded with
// objects and able to list the Argo resources. It records every action, so
// tests can inspect what was created.
//
// The fake stores objects as given, so a reactor fills in what the API server
// would: a name from generateName, as the API server's name generator does
// (five random lowercase letters and digits).
func NewFakeDynamicClient(objects ...runtime.Object) *dynamicfake.FakeDynamicClient {
	scheme := runtime.NewScheme()
	listKinds := map[schema.GroupVersionResource]string{
		WorkflowsResource:                "WorkflowList",
		WorkflowTemplatesResource:        "WorkflowTemplateList",
		ClusterWorkflowTemplatesResource: "ClusterWorkflowTemplateList",
		WorkflowEventBindingsResource:    "WorkflowEventBindingList",
		SecretsResource:                  "SecretList",
	}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, listKinds, objects...)
	client.PrependReactor("create", "*", generateName)
	return client
}

func generateName(action k8stesting.Action) (bool, runtime.Object, error) {
	create, ok := action.(k8stesting.CreateAction)
	if !ok {
		return false, nil, nil
	}
	obj, ok := create.GetObject().(*unstructured.Unstructured)
	if !ok {
		return false, nil, fmt.Errorf("generate name: unexpected object type %T", create.GetObject())
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		obj.SetName(obj.GetGenerateName() + utilrand.String(5))
	}
	// Let the default reactor store the object.
	return false, nil, nil
}
