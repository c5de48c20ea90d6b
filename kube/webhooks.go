package kube

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/wfevents/wfevents/model"
)

// SecretsResource is the core v1 Secret resource.
var SecretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// WebhookClientStoreConfig configures a WebhookClientStore.
type WebhookClientStoreConfig struct {
	// Namespace, when set, limits the Secrets watched to one namespace.
	Namespace string

	// Resync is the informer's resync period. Zero disables resyncs.
	Resync time.Duration

	// Logger receives the entries that are skipped, once per Secret
	// version. Nil discards.
	Logger *slog.Logger
}

// WebhookClientStore holds the webhook clients of every namespace, read
// through an informer from the Secret model.WebhookClientsSecret. Each Secret
// version is parsed once into a table that is never changed afterwards, so a
// request costs a map lookup and no API call. It is safe for concurrent use.
type WebhookClientStore struct {
	factory dynamicinformer.DynamicSharedInformerFactory
	synced  cache.InformerSynced
	logger  *slog.Logger

	mu sync.RWMutex
	// tables is keyed by namespace. A table is replaced, never changed.
	tables map[string]*webhookTable
}

// webhookTable is the parsed content of one Secret version.
type webhookTable struct {
	uid             string
	resourceVersion string
	// clients are sorted by name.
	clients []model.WebhookClient
}

// NewWebhookClientStore returns a store over dyn. Call Start to fill it.
//
// The informer lists and watches only Secrets named
// model.WebhookClientsSecret, with a field selector, so the server needs
// list and watch on that name alone, and never holds other Secrets.
func NewWebhookClientStore(dyn dynamic.Interface, cfg WebhookClientStoreConfig) (*WebhookClientStore, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	selectName := func(options *metav1.ListOptions) {
		options.FieldSelector = fields.OneTermEqualSelector("metadata.name", model.WebhookClientsSecret).String()
	}
	s := &WebhookClientStore{
		factory: dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, cfg.Resync, cfg.Namespace, selectName),
		logger:  cfg.Logger,
		tables:  make(map[string]*webhookTable),
	}

	registration, err := s.factory.ForResource(SecretsResource).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.upsert,
		UpdateFunc: func(_, obj any) { s.upsert(obj) },
		DeleteFunc: s.delete,
	})
	if err != nil {
		return nil, fmt.Errorf("add %s event handler: %w", SecretsResource.Resource, err)
	}
	s.synced = registration.HasSynced
	return s, nil
}

// Start starts the informer. It stops when ctx is done.
func (s *WebhookClientStore) Start(ctx context.Context) {
	s.factory.Start(ctx.Done())
}

// HasSynced reports whether every Secret seen at start has been parsed.
func (s *WebhookClientStore) HasSynced() bool {
	return s.synced()
}

// WaitForSync blocks until HasSynced or ctx is done, and reports which.
func (s *WebhookClientStore) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.synced)
}

// Clients returns the webhook clients of namespace, sorted by name, or nil
// when it has no Secret. The slice is shared: callers must not change it.
func (s *WebhookClientStore) Clients(namespace string) []model.WebhookClient {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if table, ok := s.tables[namespace]; ok {
		return table.clients
	}
	return nil
}

// upsert parses a new Secret version. The informer calls its handlers from
// one goroutine, so the check and the replacement below do not race.
func (s *WebhookClientStore) upsert(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		s.logger.Error("unexpected object from informer", "resource", SecretsResource.Resource, "type", fmt.Sprintf("%T", obj))
		return
	}
	// The field selector already excludes other Secrets, but client-go's
	// fake dynamic client ignores field selectors.
	if u.GetName() != model.WebhookClientsSecret {
		return
	}

	// A resync delivers the same version again. It is parsed, and its
	// problems logged, only once. The fake dynamic client sets no
	// resourceVersion, so there every delivery is parsed.
	namespace, uid, version := u.GetNamespace(), string(u.GetUID()), u.GetResourceVersion()
	s.mu.RLock()
	current := s.tables[namespace]
	s.mu.RUnlock()
	if current != nil && version != "" && current.uid == uid && current.resourceVersion == version {
		return
	}

	clients, problems := parseWebhookClients(u)
	resource := secretResource(namespace)
	for _, problem := range problems {
		s.logger.Warn("webhook client skipped", "resource", resource, "resource_version", version,
			"service_account", problem.key, "error", problem.err)
	}
	s.mu.Lock()
	s.tables[namespace] = &webhookTable{uid: uid, resourceVersion: version, clients: clients}
	s.mu.Unlock()
	s.logger.Info("webhook clients loaded", "resource", resource, "resource_version", version,
		"webhook_client_count", len(clients), "skipped_count", len(problems))
}

func (s *WebhookClientStore) delete(obj any) {
	u, ok := deletedObject(obj, s.logger)
	if !ok {
		return
	}
	if u.GetName() != model.WebhookClientsSecret {
		return
	}

	s.mu.Lock()
	delete(s.tables, u.GetNamespace())
	s.mu.Unlock()
	s.logger.Info("webhook clients removed", "resource", secretResource(u.GetNamespace()))
}

func secretResource(namespace string) string {
	return "Secret/" + namespace + "/" + model.WebhookClientsSecret
}

// entryProblem is the reason one key of the Secret was skipped. Its error
// never contains the value, which may be the secret itself.
type entryProblem struct {
	key string
	err error
}

// parseWebhookClients returns the usable entries of a webhook-clients Secret,
// sorted by name, and why each other entry was skipped.
//
// It reads data, base64 as the API server returns it, and stringData, which
// the API server merges into data on write but client-go's fake dynamic
// client keeps as given. A key in both takes its stringData value, as on the
// API server.
func parseWebhookClients(u *unstructured.Unstructured) ([]model.WebhookClient, []entryProblem) {
	var problems []entryProblem
	values := make(map[string][]byte)
	failed := make(map[string]error)

	data, _, err := unstructured.NestedStringMap(u.Object, "data")
	if err != nil {
		problems = append(problems, entryProblem{key: "*", err: errors.New("data is not a map of strings: the whole field is skipped")})
	}
	for key, encoded := range data {
		decoded, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			failed[key] = errors.New("data value is not valid base64")
			continue
		}
		values[key] = decoded
	}
	stringData, _, err := unstructured.NestedStringMap(u.Object, "stringData")
	if err != nil {
		problems = append(problems, entryProblem{key: "*", err: errors.New("stringData is not a map of strings: the whole field is skipped")})
	}
	for key, value := range stringData {
		values[key] = []byte(value)
		delete(failed, key)
	}

	for key, err := range failed {
		problems = append(problems, entryProblem{key: key, err: err})
	}
	var clients []model.WebhookClient
	for key, value := range values {
		client, err := parseWebhookClient(key, value)
		if err != nil {
			problems = append(problems, entryProblem{key: key, err: err})
			continue
		}
		clients = append(clients, client)
	}

	slices.SortFunc(clients, func(a, b model.WebhookClient) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(problems, func(a, b entryProblem) int { return strings.Compare(a.key, b.key) })
	return clients, problems
}

// parseWebhookClient parses one entry: a ServiceAccount name and a YAML
// mapping with type and secret.
func parseWebhookClient(name string, value []byte) (model.WebhookClient, error) {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return model.WebhookClient{}, fmt.Errorf("key is not a valid ServiceAccount name: %s", strings.Join(errs, "; "))
	}

	// The YAML error is not passed on, because it can quote the value.
	var entry map[string]any
	if err := yaml.Unmarshal(value, &entry); err != nil || entry == nil {
		return model.WebhookClient{}, errors.New("value is not a YAML mapping: write it as type: <type> and secret: <secret> on two lines")
	}

	typ, ok := entry["type"].(string)
	if !ok {
		return model.WebhookClient{}, fmt.Errorf("type is missing or not a string: set it to one of %s", knownWebhookTypes())
	}
	if !model.WebhookType(typ).Known() {
		return model.WebhookClient{}, fmt.Errorf("unknown type %q: set it to one of %s", typ, knownWebhookTypes())
	}
	secret, ok := entry["secret"].(string)
	if !ok || secret == "" {
		return model.WebhookClient{}, errors.New("secret is missing, empty or not a string: set it to the webhook's secret, quoted if YAML would read it as a number")
	}
	return model.WebhookClient{Name: name, Type: model.WebhookType(typ), Secret: model.Token(secret)}, nil
}

func knownWebhookTypes() string {
	names := make([]string, len(model.WebhookTypes))
	for i, typ := range model.WebhookTypes {
		names[i] = string(typ)
	}
	return strings.Join(names, ", ")
}
