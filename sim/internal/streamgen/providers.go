package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/sim"
)

// eventsPath is the namespaced events endpoint that webhook senders post to.
const eventsPath = "/api/v1/events/" + namespace

// idNamespace seeds the name-based UUIDs of deliveries and events, so each
// ID depends only on its name and the streams are the same on every run.
var idNamespace = uuid.MustParse("8c6f5c1e-2f0d-4a57-9a1e-5b3f6d2c7e90")

// newID returns the version 5 UUID of name.
func newID(name string) string {
	return uuid.NewSHA1(idNamespace, []byte(name)).String()
}

// Header values that stay the same across the deliveries of one hook. The
// hook ID is the one in github/ping.json, and the GitLab instance is the one
// in gitlab/push.json. The versions in the user agents are examples.
const (
	gitHubHookID       = "109948940"
	gitHubUserAgent    = "GitHub-Hookshot/5a3e8c1"
	gitLabInstance     = "http://example.com"
	gitLabUserAgent    = "GitLab/17.6.1"
	bitbucketUserAgent = "Bitbucket-Webhooks/2.0"
	curlUserAgent      = "curl/8.5.0"
)

// delivery is a webhook delivery before its provider's headers are added.
type delivery struct {
	at time.Time

	// id is the provider's delivery ID, which a redelivery keeps.
	id string

	// event is the value of the provider's event header.
	event string

	body []byte
}

// signature returns the value of GitHub's X-Hub-Signature-256 and Bitbucket
// Server's X-Hub-Signature: "sha256=" and the hex HMAC-SHA256 of body keyed
// with secret.
func signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// gitHub returns d as GitHub sends it: signed with the github client's
// secret. The server takes X-GitHub-Delivery as the event ID.
func (in *inputs) gitHub(d delivery) sim.Request {
	client := in.clients[model.WebhookGitHub]
	headers := http.Header{}
	headers.Set("Accept", "*/*")
	headers.Set("Content-Type", "application/json")
	headers.Set("User-Agent", gitHubUserAgent)
	headers.Set("X-GitHub-Delivery", d.id)
	headers.Set("X-GitHub-Event", d.event)
	headers.Set("X-GitHub-Hook-ID", gitHubHookID)
	headers.Set("X-Hub-Signature-256", signature(client.secret, d.body))
	return webhookRequest(d, headers, client, d.id)
}

// gitLab returns d as GitLab sends it: with the gitlab client's secret as
// the token. The server takes X-Gitlab-Event-UUID as the event ID.
func (in *inputs) gitLab(d delivery) sim.Request {
	client := in.clients[model.WebhookGitLab]
	headers := http.Header{}
	headers.Set("Content-Type", "application/json")
	headers.Set("User-Agent", gitLabUserAgent)
	headers.Set("X-Gitlab-Event", d.event)
	headers.Set("X-Gitlab-Event-UUID", d.id)
	headers.Set("X-Gitlab-Instance", gitLabInstance)
	headers.Set("X-Gitlab-Token", client.secret)
	headers.Set("X-Gitlab-Webhook-UUID", newID("gitlab/webhook"))
	return webhookRequest(d, headers, client, d.id)
}

// bitbucket returns d as Bitbucket Cloud sends it: with the bitbucket
// client's secret as the hook's UUID. The server takes X-Request-UUID as the
// event ID.
func (in *inputs) bitbucket(d delivery) sim.Request {
	client := in.clients[model.WebhookBitbucket]
	headers := http.Header{}
	headers.Set("Content-Type", "application/json")
	headers.Set("User-Agent", bitbucketUserAgent)
	headers.Set("X-Attempt-Number", "1")
	headers.Set("X-Event-Key", d.event)
	headers.Set("X-Hook-UUID", client.secret)
	headers.Set("X-Request-UUID", d.id)
	return webhookRequest(d, headers, client, d.id)
}

// bitbucketServer returns d as Bitbucket Server sends it: signed with the
// bitbucketserver client's secret. Its X-Request-Id is not a delivery ID the
// server reads, so the event ID is a new one, as the server would generate.
func (in *inputs) bitbucketServer(d delivery) sim.Request {
	client := in.clients[model.WebhookBitbucketServer]
	headers := http.Header{}
	headers.Set("Content-Type", "application/json")
	headers.Set("X-Event-Key", d.event)
	headers.Set("X-Hub-Signature", signature(client.secret, d.body))
	headers.Set("X-Request-Id", d.id)
	return webhookRequest(d, headers, client, newID("event/"+d.id))
}

// webhookRequest returns a delivery that verifies as client and that the
// server accepts with eventID.
func webhookRequest(d delivery, headers http.Header, client webhookClient, eventID string) sim.Request {
	return sim.Request{
		Time:    d.at,
		Method:  http.MethodPost,
		Path:    eventsPath,
		Headers: headers,
		Body:    d.body,
		Subject: client.subject(),
		EventID: eventID,
	}
}

// bearer returns a request that curl sends with -d and a bearer token,
// recorded with the token redacted, that the server accepts as subject
// with eventID. With e2e, it carries the header X-Argo-E2E: true that the
// reference template event-consumer requires.
func bearer(at time.Time, path string, body []byte, subject, eventID string, e2e bool) sim.Request {
	headers := http.Header{}
	headers.Set("Accept", "*/*")
	headers.Set("Authorization", sim.Redacted)
	headers.Set("Content-Type", "application/x-www-form-urlencoded")
	headers.Set("User-Agent", curlUserAgent)
	if e2e {
		headers.Set("X-Argo-E2E", "true")
	}
	return sim.Request{
		Time:    at,
		Method:  http.MethodPost,
		Path:    path,
		Headers: headers,
		Body:    body,
		Subject: subject,
		EventID: eventID,
	}
}
