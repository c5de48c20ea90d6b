package kube

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/model"
)

// storeWait bounds every wait for the informer. It only matters when a test
// is about to fail.
const storeWait = 5 * time.Second

// lockedBuffer collects log output written from the informer's goroutine
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// webhookSecret returns the webhook-clients Secret of namespace at version,
// with data values base64-encoded as the API server returns them.
func webhookSecret(t testing.TB, namespace, version string, data, stringData map[string]string) *unstructured.Unstructured {
	t.Helper()
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":            model.WebhookClientsSecret,
			"namespace":       namespace,
			"uid":             "uid-" + namespace,
			"resourceVersion": version,
		},
	}}
	if data != nil {
		encoded := make(map[string]any, len(data))
		for key, value := range data {
			encoded[key] = base64.StdEncoding.EncodeToString([]byte(value))
		}
		secret.Object["data"] = encoded
	}
	if stringData != nil {
		plain := make(map[string]any, len(stringData))
		for key, value := range stringData {
			plain[key] = value
		}
		secret.Object["stringData"] = plain
	}
	return secret
}

// startWebhookStore starts a store on a fake cluster seeded with objects and
// waits for it to sync. Its logs go to the test log and to the returned
// buffer.
func startWebhookStore(t testing.TB, objects ...*unstructured.Unstructured) (*WebhookClientStore, *fake.FakeDynamicClient, *lockedBuffer) {
	t.Helper()
	seed := make([]runtime.Object, len(objects))
	for i, obj := range objects {
		seed[i] = obj
	}
	dyn := NewFakeDynamicClient(seed...)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), nil))
	store, err := NewWebhookClientStore(dyn, WebhookClientStoreConfig{Logger: logger})
	require.NoError(t, err)

	store.Start(t.Context())
	require.True(t, store.WaitForSync(t.Context()), "webhook client store did not sync")
	return store, dyn, logs
}

func TestWebhookClientStoreParsesSecret(t *testing.T) {
	secret := webhookSecret(t, "argo",
		"1",
		map[string]string{
			"github":  "type: github\nsecret: from-data\n",
			"both":    "type: gitlab\nsecret: overridden\n",
			"invalid": "type: github\nsecret: unused\n",
		},
		map[string]string{
			"gitlab": "type: gitlab\nsecret: from-string-data\n",
			"both":   "type: bitbucket\nsecret: from-string-data-wins\n",
		})
	// An entry whose data is not base64 is skipped unless stringData
	// replaces it.
	secret.Object["data"].(map[string]any)["invalid"] = "%%%"
	other := webhookSecret(t, "team-a", "4", nil, map[string]string{"ci": "type: bitbucketserver\nsecret: team-a-secret\n"})
	unrelated := webhookSecret(t, "argo", "1", nil, map[string]string{"intruder": "type: github\nsecret: x\n"})
	unrelated.SetName("unrelated")

	store, dyn, logs := startWebhookStore(t, secret, other, unrelated)

	assert.True(t, store.HasSynced())
	assert.Equal(t, []model.WebhookClient{
		{Name: "both", Type: model.WebhookBitbucket, Secret: "from-string-data-wins"},
		{Name: "github", Type: model.WebhookGitHub, Secret: "from-data"},
		{Name: "gitlab", Type: model.WebhookGitLab, Secret: "from-string-data"},
	}, store.Clients("argo"), "sorted by name, stringData over data, other Secrets ignored")
	assert.Equal(t, []model.WebhookClient{{Name: "ci", Type: model.WebhookBitbucketServer, Secret: "team-a-secret"}}, store.Clients("team-a"))
	assert.Nil(t, store.Clients("no-secret"))
	assert.Contains(t, logs.String(), "service_account=invalid")
	assert.Contains(t, logs.String(), "not valid base64")

	// Only the Secret of that name is listed and watched.
	var selectors []string
	for _, action := range dyn.Actions() {
		if action.GetResource() != SecretsResource {
			continue
		}
		if list, ok := action.(k8stesting.ListAction); ok {
			selectors = append(selectors, list.GetListRestrictions().Fields.String())
		}
	}
	assert.Equal(t, []string{"metadata.name=" + model.WebhookClientsSecret}, selectors)
}

func TestWebhookClientStoreFollowsChanges(t *testing.T) {
	secret := webhookSecret(t, "argo", "1", map[string]string{"github": "type: github\nsecret: first\n"}, nil)
	store, dyn, _ := startWebhookStore(t, secret)
	require.Equal(t, []model.WebhookClient{{Name: "github", Type: model.WebhookGitHub, Secret: "first"}}, store.Clients("argo"))
	secrets := dyn.Resource(SecretsResource).Namespace("argo")

	// An update replaces the table.
	changed := webhookSecret(t, "argo", "2", map[string]string{"github": "type: github\nsecret: second\n"}, nil)
	_, err := secrets.Update(t.Context(), changed, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		clients := store.Clients("argo")
		return len(clients) == 1 && clients[0].Secret == "second"
	}, storeWait, 5*time.Millisecond, "update not seen")

	// A delete removes it.
	require.NoError(t, secrets.Delete(t.Context(), model.WebhookClientsSecret, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return store.Clients("argo") == nil }, storeWait, 5*time.Millisecond, "delete not seen")
}

func TestWebhookClientStoreLogsOncePerVersion(t *testing.T) {
	entries := map[string]string{
		"github": "type: github\nsecret: github-secret-value\n",
		"gitea":  "type: gitea\nsecret: gitea-secret-value\n",
	}
	store, _, logs := startWebhookStore(t)
	countSkipped := func() int { return strings.Count(logs.String(), "webhook client skipped") }

	// A resync delivers the same version again.
	store.upsert(webhookSecret(t, "argo", "1", nil, entries))
	store.upsert(webhookSecret(t, "argo", "1", nil, entries))
	assert.Equal(t, 1, countSkipped(), "one line for version 1")
	assert.Contains(t, logs.String(), `unknown type \"gitea\"`)
	assert.Equal(t, []model.WebhookClient{{Name: "github", Type: model.WebhookGitHub, Secret: "github-secret-value"}}, store.Clients("argo"))

	store.upsert(webhookSecret(t, "argo", "2", nil, entries))
	assert.Equal(t, 2, countSkipped(), "one more line for version 2")
	assert.NotContains(t, logs.String(), "secret-value")
}

func TestParseWebhookClient(t *testing.T) {
	const secretValue = "s3cret-value"

	tests := []struct {
		name    string
		key     string
		value   string
		want    model.WebhookClient
		wantErr string // substring of the error; "" means no error
	}{
		{name: "github", key: "github", value: "type: github\nsecret: " + secretValue, want: model.WebhookClient{Name: "github", Type: model.WebhookGitHub, Secret: secretValue}},
		{name: "gitlab flow style", key: "gl", value: "{type: gitlab, secret: " + secretValue + "}", want: model.WebhookClient{Name: "gl", Type: model.WebhookGitLab, Secret: secretValue}},
		{name: "bitbucket json", key: "bb", value: `{"type": "bitbucket", "secret": "` + secretValue + `"}`, want: model.WebhookClient{Name: "bb", Type: model.WebhookBitbucket, Secret: secretValue}},
		{name: "bitbucketserver extra field", key: "bbs", value: "type: bitbucketserver\nsecret: " + secretValue + "\nnote: x", want: model.WebhookClient{Name: "bbs", Type: model.WebhookBitbucketServer, Secret: secretValue}},
		{name: "not YAML", key: "a", value: "type: [github\nsecret: " + secretValue, wantErr: "not a YAML mapping"},
		{name: "scalar", key: "a", value: secretValue, wantErr: "not a YAML mapping"},
		{name: "list", key: "a", value: "- " + secretValue, wantErr: "not a YAML mapping"},
		{name: "empty", key: "a", value: "", wantErr: "not a YAML mapping"},
		{name: "missing type", key: "a", value: "secret: " + secretValue, wantErr: "type is missing"},
		{name: "unknown type", key: "a", value: "type: gitea\nsecret: " + secretValue, wantErr: `unknown type "gitea"`},
		{name: "type case differs", key: "a", value: "type: GitHub\nsecret: " + secretValue, wantErr: `unknown type "GitHub"`},
		{name: "missing secret", key: "a", value: "type: github", wantErr: "secret is missing"},
		{name: "empty secret", key: "a", value: "type: github\nsecret: ''", wantErr: "secret is missing"},
		{name: "numeric secret", key: "a", value: "type: github\nsecret: 12345", wantErr: "quoted"},
		{name: "invalid key", key: "Not_A_Name", value: "type: github\nsecret: " + secretValue, wantErr: "not a valid ServiceAccount name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWebhookClient(tt.key, []byte(tt.value))

			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), secretValue, "error quotes the secret")
		})
	}
}
