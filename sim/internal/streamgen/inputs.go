package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/model"
)

// namespace is the namespace of the fixtures' resources and webhook
// clients, to which every stream sends its events.
const namespace = "argo"

// The webhook bodies the streams send, as paths under fixtures/webhooks.
const (
	gitHubPing                   = "github/ping.json"
	gitHubPush                   = "github/push.json"
	gitHubPullRequestOpened      = "github/pull_request-opened.json"
	gitHubPullRequestSynchronize = "github/pull_request-synchronize.json"
	gitHubPullRequestClosed      = "github/pull_request-closed.json"
	gitLabPush                   = "gitlab/push.json"
	gitLabMergeRequest           = "gitlab/merge_request.json"
	bitbucketPush                = "bitbucket/repo-push.json"
	bitbucketPullRequestCreated  = "bitbucket/pullrequest-created.json"
	bitbucketServerRefsChanged   = "bitbucket-server/repo-refs_changed.json"
	bitbucketServerPROpened      = "bitbucket-server/pr-opened.json"
)

var bodyFiles = []string{
	gitHubPing, gitHubPush, gitHubPullRequestOpened, gitHubPullRequestSynchronize, gitHubPullRequestClosed,
	gitLabPush, gitLabMergeRequest,
	bitbucketPush, bitbucketPullRequestCreated,
	bitbucketServerRefsChanged, bitbucketServerPROpened,
}

// inputs contains the webhook bodies and webhook clients of a fixtures
// directory.
type inputs struct {
	// bodies are the webhook bodies, keyed by their path under webhooks/
	// and compacted with json.Compact.
	bodies map[string][]byte

	// clients are the webhook clients of namespace, by type.
	clients map[model.WebhookType]webhookClient
}

// webhookClient is one entry of the webhook-clients Secret.
type webhookClient struct {
	name   string
	secret string
}

// subject returns the user name of the ServiceAccount that a delivery
// verified with the client's secret acts as.
func (c webhookClient) subject() string {
	return model.ServiceAccountIdentity(namespace, c.name).Subject
}

// loadInputs reads the bodies in bodyFiles and the webhook clients from the
// fixtures directory dir.
func loadInputs(dir string) (*inputs, error) {
	in := &inputs{bodies: make(map[string][]byte)}
	for _, name := range bodyFiles {
		data, err := os.ReadFile(path.Join(dir, "webhooks", name))
		if err != nil {
			return nil, fmt.Errorf("read webhook body: %w", err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			return nil, fmt.Errorf("compact webhook body %s: %w", name, err)
		}
		in.bodies[name] = compact.Bytes()
	}

	set, err := fixtures.Load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("load fixtures from %s: %w", dir, err)
	}
	if in.clients, err = webhookClients(set.Objects); err != nil {
		return nil, err
	}
	for _, typ := range model.WebhookTypes {
		if _, ok := in.clients[typ]; !ok {
			return nil, fmt.Errorf("secret %s/%s has no client of type %s: add one, because the streams send deliveries of every type",
				namespace, model.WebhookClientsSecret, typ)
		}
	}
	return in, nil
}

// webhookClients reads the webhook-clients Secret of namespace from
// objects. Of several clients of one type, it keeps the first by name, as
// the server tries them in that order.
func webhookClients(objects []*unstructured.Unstructured) (map[model.WebhookType]webhookClient, error) {
	i := slices.IndexFunc(objects, func(obj *unstructured.Unstructured) bool {
		return obj.GetKind() == "Secret" && obj.GetNamespace() == namespace && obj.GetName() == model.WebhookClientsSecret
	})
	if i < 0 {
		return nil, fmt.Errorf("secret %s/%s not found in the fixtures", namespace, model.WebhookClientsSecret)
	}
	values, err := secretValues(objects[i])
	if err != nil {
		return nil, err
	}

	clients := make(map[model.WebhookType]webhookClient)
	for _, name := range slices.Sorted(maps.Keys(values)) {
		var entry struct {
			Type   model.WebhookType `json:"type"`
			Secret string            `json:"secret"`
		}
		if err := yaml.Unmarshal(values[name], &entry); err != nil {
			return nil, fmt.Errorf("read webhook client %q: %w", name, err)
		}
		if _, seen := clients[entry.Type]; !seen && entry.Secret != "" {
			clients[entry.Type] = webhookClient{name: name, secret: entry.Secret}
		}
	}
	return clients, nil
}

// secretValues returns the entries of a Secret: data, decoded from base64,
// and stringData, which wins for a key in both, as on the API server.
func secretValues(secret *unstructured.Unstructured) (map[string][]byte, error) {
	values := make(map[string][]byte)
	data, _, err := unstructured.NestedStringMap(secret.Object, "data")
	if err != nil {
		return nil, fmt.Errorf("read data of the Secret %s: %w", model.WebhookClientsSecret, err)
	}
	for key, encoded := range data {
		decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
		if err != nil {
			return nil, fmt.Errorf("decode data[%q] of the Secret %s: %w", key, model.WebhookClientsSecret, err)
		}
		values[key] = decoded
	}
	stringData, _, err := unstructured.NestedStringMap(secret.Object, "stringData")
	if err != nil {
		return nil, fmt.Errorf("read stringData of the Secret %s: %w", model.WebhookClientsSecret, err)
	}
	for key, value := range stringData {
		values[key] = []byte(value)
	}
	return values, nil
}
