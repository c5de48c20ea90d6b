package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/wfevents/wfevents/model"
)

// WebhookClients returns the webhook clients of a namespace: the senders that
// prove who they are by a secret instead of an Authorization header.
// *kube.WebhookClientStore implements it.
type WebhookClients interface {
	// Clients returns the clients of namespace in any order, or none. It is
	// called for every request without an Authorization header, so it must
	// not call the API server. Callers only read the result.
	Clients(namespace string) []model.WebhookClient
}

// webhookHeaders maps each webhook type to the header that carries its proof.
var webhookHeaders = map[model.WebhookType]string{
	model.WebhookGitHub:          "X-Hub-Signature-256",
	model.WebhookGitLab:          "X-Gitlab-Token",
	model.WebhookBitbucket:       "X-Hook-UUID",
	model.WebhookBitbucketServer: "X-Hub-Signature",
}

// signaturePrefix starts the value of both HMAC signature headers.
const signaturePrefix = "sha256="

// isWebhookDelivery reports whether r is to be authenticated by a webhook
// signature: it has no Authorization header and the server has webhook
// clients to check it against.
func (s *Server) isWebhookDelivery(r *http.Request) bool {
	return s.cfg.WebhookClients != nil && len(r.Header.Values("Authorization")) == 0
}

// admitWebhook authenticates a delivery as the first client of namespace, by
// name, whose secret it proves, then authorizes that ServiceAccount, and
// reads and parses the body. When it returns false, it has sent the response.
//
// A verified GitHub ping gets 200 and an event ID here and is not queued.
// GitHub sends it when a hook is created, to show whether the hook works, so
// it should start nothing. Its event ID is derived as for any other
// delivery, from X-GitHub-Delivery when present, so it matches the delivery
// ID that GitHub shows for the hook.
func (s *Server) admitWebhook(w http.ResponseWriter, r *http.Request, namespace string) (model.Identity, any, bool) {
	// Webhook clients are listed per namespace, so a delivery must name one.
	if namespace == "" {
		s.rejectUnread(w, r, model.Errorf(model.CodeUnauthenticated,
			"missing Authorization header: a cluster-scoped event needs a bearer token, because webhook signatures are checked against the Secret %s of the namespace in the path: send Authorization: Bearer <token>, or send the delivery to /api/v1/events/{namespace}",
			model.WebhookClientsSecret))
		return model.Identity{}, nil, false
	}

	// Verify the signature, reading the body only when a candidate signs it.
	delivery, err := s.verifyWebhook(w, r, namespace)
	if err != nil {
		delivery.reject(s, w, r, err)
		return model.Identity{}, nil, false
	}
	caller := model.ServiceAccountIdentity(namespace, delivery.client.Name)
	notifyAuthenticated(r, caller)

	// Authorize the ServiceAccount as if it had sent its own token.
	if err := s.authorize(r, caller, namespace); err != nil {
		delivery.reject(s, w, r, err)
		return model.Identity{}, nil, false
	}

	// Parse the bytes that were verified, reading them now if no signature
	// needed them.
	if !delivery.bodyRead {
		if delivery.body, err = s.readBody(w, r); err != nil {
			s.writeError(w, r, err)
			return model.Identity{}, nil, false
		}
	}
	payload, err := decodePayload(delivery.body)
	if err != nil {
		s.writeError(w, r, err)
		return model.Identity{}, nil, false
	}

	if delivery.client.Type == model.WebhookGitHub && r.Header.Get("X-GitHub-Event") == "ping" {
		id := s.eventID(r, caller, namespace)
		s.cfg.Logger.Debug("github ping acknowledged", "event_id", id, "namespace", namespace, "subject", caller.Subject)
		w.Header().Set("X-Event-Id", id)
		writeJSON(w, http.StatusOK, EventResponse{EventID: id})
		return model.Identity{}, nil, false
	}
	return caller, payload, true
}

// webhookDelivery is a request under verification: the client it proved,
// and its body once read.
type webhookDelivery struct {
	client   model.WebhookClient
	body     []byte
	bodyRead bool
}

// reject sends err, closing the connection when the body is still unread.
func (d webhookDelivery) reject(s *Server, w http.ResponseWriter, r *http.Request, err error) {
	if d.bodyRead {
		s.writeError(w, r, err)
		return
	}
	s.rejectUnread(w, r, err)
}

// verifyWebhook finds the first client of namespace, by name, whose secret
// the request proves. It reads the body, never past the limit, only when it
// reaches a candidate that signs the body, so a delivery without a usable
// header is rejected unread.
//
// The message is the same whether or not the namespace has webhook clients,
// so a missing Secret gets 401 like a wrong signature, not 403.
func (s *Server) verifyWebhook(w http.ResponseWriter, r *http.Request, namespace string) (webhookDelivery, error) {
	var delivery webhookDelivery
	clients := s.cfg.WebhookClients.Clients(namespace)
	candidates := webhookCandidates(clients, r.Header)
	for _, candidate := range candidates {
		if signsBody(candidate.Type) && !delivery.bodyRead {
			body, err := s.readBody(w, r)
			if err != nil {
				delivery.bodyRead = true
				return delivery, err
			}
			delivery.body, delivery.bodyRead = body, true
		}
		if verifySignature(candidate, r.Header, delivery.body) {
			delivery.client = candidate
			return delivery, nil
		}
	}
	s.cfg.Metrics.SignatureFailed(claimedProvider(r.Header))
	return delivery, &model.Error{
		Code: model.CodeUnauthenticated,
		Message: fmt.Sprintf("missing Authorization header or valid webhook signature: send Authorization: Bearer <token>, or sign the delivery with a secret from the Secret %s in namespace %q",
			model.WebhookClientsSecret, namespace),
		Err: fmt.Errorf("%d of the namespace's %d webhook clients have a well-formed header in the request, and none verified", len(candidates), len(clients)),
	}
}

// webhookCandidates returns the clients, sorted by name, that the request
// can still prove: it carries their header once and well formed. Clients
// whose header is the secret itself are verified here, before the body is
// read, and dropped when they fail.
func webhookCandidates(clients []model.WebhookClient, header http.Header) []model.WebhookClient {
	var candidates []model.WebhookClient
	for _, client := range clients {
		value, ok := proofHeader(client.Type, header)
		switch {
		case !ok || client.Secret == "":
			continue
		case signsBody(client.Type):
			if _, ok := parseSignature(value); !ok {
				continue
			}
		case !verifySignature(client, header, nil):
			continue
		}
		candidates = append(candidates, client)
	}
	// Names are unique within a Secret, because they are its keys.
	slices.SortFunc(candidates, func(a, b model.WebhookClient) int { return strings.Compare(a.Name, b.Name) })
	return candidates
}

// verifySignature reports whether header proves that the sender holds
// client's secret. For github and bitbucketserver the proof is "sha256=" and
// the HMAC-SHA256 of body keyed with the secret, and for gitlab and bitbucket
// it is the secret itself. Every comparison takes constant time. An empty
// secret or an unknown type never verifies.
func verifySignature(client model.WebhookClient, header http.Header, body []byte) bool {
	value, ok := proofHeader(client.Type, header)
	if !ok || client.Secret == "" {
		return false
	}
	if !signsBody(client.Type) {
		return equalSecret(value, client.Secret)
	}

	signature, ok := parseSignature(value)
	if !ok {
		return false
	}
	mac := hmac.New(sha256.New, []byte(client.Secret))
	mac.Write(body)
	return hmac.Equal(signature, mac.Sum(nil))
}

// proofHeader returns the value of the header that carries typ's proof. A
// header sent more than once proves nothing, because it is unclear which
// value to check.
func proofHeader(typ model.WebhookType, header http.Header) (string, bool) {
	name, ok := webhookHeaders[typ]
	if !ok {
		return "", false
	}
	values := header.Values(name)
	if len(values) != 1 {
		return "", false
	}
	return values[0], true
}

func signsBody(typ model.WebhookType) bool {
	return typ == model.WebhookGitHub || typ == model.WebhookBitbucketServer
}

// parseSignature decodes "sha256=" followed by 64 hex digits.
func parseSignature(value string) ([]byte, bool) {
	digits, found := strings.CutPrefix(value, signaturePrefix)
	if !found || len(digits) != hex.EncodedLen(sha256.Size) {
		return nil, false
	}
	signature, err := hex.DecodeString(digits)
	if err != nil {
		return nil, false
	}
	return signature, true
}

// equalSecret compares value with secret in constant time. Both are hashed
// first, so the time taken does not depend on their lengths either.
func equalSecret(value string, secret model.Token) bool {
	got := sha256.Sum256([]byte(value))
	want := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// claimedProvider names the provider whose proof header the request carries,
// for the signature failure counter, or "none".
func claimedProvider(header http.Header) string {
	for _, provider := range []model.WebhookType{model.WebhookGitHub, model.WebhookGitLab, model.WebhookBitbucket, model.WebhookBitbucketServer} {
		if _, ok := proofHeader(provider, header); ok {
			return string(provider)
		}
	}
	return "none"
}
