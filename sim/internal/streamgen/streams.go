package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"time"

	"github.com/wfevents/wfevents/sim"
)

// start is when every stream begins.
var start = time.Date(2026, time.January, 5, 9, 0, 0, 0, time.UTC)

// step is the time between two requests of a small stream.
const step = time.Second

// The fixture resources that create Workflows, as sim.Expectation names
// them.
const (
	eventConsumerTemplate       = "WorkflowTemplate/argo/event-consumer"
	gitHubPushTemplate          = "WorkflowTemplate/argo/github-push"
	gitHubPullRequestBinding    = "WorkflowEventBinding/argo/github-pull-request"
	gitLabPushTemplate          = "WorkflowTemplate/argo/gitlab-push"
	bitbucketPushBinding        = "WorkflowEventBinding/argo/bitbucket-push"
	bitbucketServerPushTemplate = "WorkflowTemplate/argo/bitbucket-server-push"
)

// The callers of bearer requests, as fixtures/tokens.csv names them:
// admin-token may use every namespace, and github-token only argo.
const (
	adminSubject        = "admin"
	namespacedSubject   = "system:serviceaccount:argo:github"
	namespaceNotAllowed = "other"
)

// referenceMessageBody is the body of the reference event, compacted.
const referenceMessageBody = `{"message":"hello events"}`

// generate returns the streams, keyed by file name without .jsonl.
func generate(in *inputs) (map[string][]sim.Request, error) {
	branchPush, err := gitHubBranchPush(in.bodies[gitHubPush])
	if err != nil {
		return nil, err
	}
	return map[string][]sim.Request{
		"github":           gitHubStream(in, branchPush),
		"gitlab":           gitLabStream(in),
		"bitbucket":        bitbucketStream(in),
		"bitbucket-server": bitbucketServerStream(in),
		"bearer":           bearerStream(),
		"burst":            burstStream(in, branchPush),
	}, nil
}

// gitHubBranchPush returns the push of github/push.json, a deleted tag, as
// the push of a deleted branch main: the same body with refs/heads/main for
// its ref. No body in fixtures/webhooks pushes a branch.
func gitHubBranchPush(tagPush []byte) ([]byte, error) {
	tagRef := []byte(`"ref":"refs/tags/simple-tag"`)
	if n := bytes.Count(tagPush, tagRef); n != 1 {
		return nil, fmt.Errorf("derive a branch push from %s: found %s %d times, want once", gitHubPush, tagRef, n)
	}
	return bytes.Replace(tagPush, tagRef, []byte(`"ref":"refs/heads/main"`), 1), nil
}

// clock returns a function that returns from, then each step later.
func clock(from time.Time, step time.Duration) func() time.Time {
	next := from
	return func() time.Time {
		now := next
		next = next.Add(step)
		return now
	}
}

// expect returns the expectation for a request that gets status and creates
// a Workflow from each of resources and from no other resource.
func expect(status int, resources ...string) *sim.Expectation {
	return &sim.Expectation{Status: status, Resources: append([]string{}, resources...)}
}

// rejected marks req as rejected with status before an event exists, so
// the server authenticated no caller, returned no event ID and created
// nothing.
func rejected(req *sim.Request, status int) {
	req.Subject = ""
	req.EventID = ""
	req.Expect = expect(status)
}

// gitHubStream returns a hook's ping, pushes of a branch and a tag, a pull
// request opened, synchronized and closed, a redelivery, and a delivery
// with a wrong signature.
func gitHubStream(in *inputs, branchPush []byte) []sim.Request {
	at := clock(start, step)
	id := func(name string) string { return newID("github/" + name) }

	// GitHub sends a ping when the hook is created. The server returns 200
	// without queueing it, with a new event ID.
	ping := in.gitHub(delivery{at: at(), id: id("ping"), event: "ping", body: in.bodies[gitHubPing]})
	ping.EventID = newID("event/" + ping.Headers.Get("X-GitHub-Delivery"))
	ping.Expect = expect(http.StatusOK)

	pushBranch := in.gitHub(delivery{at: at(), id: id("push-branch"), event: "push", body: branchPush})
	pushBranch.Expect = expect(http.StatusOK, gitHubPushTemplate)

	pushTag := in.gitHub(delivery{at: at(), id: id("push-tag"), event: "push", body: in.bodies[gitHubPush]})
	pushTag.Expect = expect(http.StatusOK, gitHubPushTemplate)

	opened := in.gitHub(delivery{at: at(), id: id("pull-request-opened"), event: "pull_request", body: in.bodies[gitHubPullRequestOpened]})
	opened.Expect = expect(http.StatusOK, gitHubPullRequestBinding)

	synchronize := in.gitHub(delivery{at: at(), id: id("pull-request-synchronize"), event: "pull_request", body: in.bodies[gitHubPullRequestSynchronize]})
	synchronize.Expect = expect(http.StatusOK, gitHubPullRequestBinding)

	closed := in.gitHub(delivery{at: at(), id: id("pull-request-closed"), event: "pull_request", body: in.bodies[gitHubPullRequestClosed]})
	closed.Expect = expect(http.StatusOK)

	// A redelivery keeps X-GitHub-Delivery, so it derives the Workflow name
	// of the first delivery and creates no second Workflow.
	redelivery := in.gitHub(delivery{at: at(), id: id("push-branch"), event: "push", body: branchPush})
	redelivery.Expect = expect(http.StatusOK)

	wrongSignature := in.gitHub(delivery{at: at(), id: id("push-wrong-signature"), event: "push", body: in.bodies[gitHubPush]})
	wrongSignature.Headers.Set("X-Hub-Signature-256", signature("not-the-webhook-secret", in.bodies[gitHubPush]))
	rejected(&wrongSignature, http.StatusUnauthorized)

	return []sim.Request{ping, pushBranch, pushTag, opened, synchronize, closed, redelivery, wrongSignature}
}

// gitLabStream returns a push, a merge request, and a push with a wrong
// token.
func gitLabStream(in *inputs) []sim.Request {
	at := clock(start, step)
	id := func(name string) string { return newID("gitlab/" + name) }

	push := in.gitLab(delivery{at: at(), id: id("push"), event: "Push Hook", body: in.bodies[gitLabPush]})
	push.Expect = expect(http.StatusOK, gitLabPushTemplate)

	mergeRequest := in.gitLab(delivery{at: at(), id: id("merge-request"), event: "Merge Request Hook", body: in.bodies[gitLabMergeRequest]})
	mergeRequest.Expect = expect(http.StatusOK)

	wrongToken := in.gitLab(delivery{at: at(), id: id("push-wrong-token"), event: "Push Hook", body: in.bodies[gitLabPush]})
	wrongToken.Headers.Set("X-Gitlab-Token", "not-the-webhook-secret")
	rejected(&wrongToken, http.StatusUnauthorized)

	return []sim.Request{push, mergeRequest, wrongToken}
}

// bitbucketStream returns a Bitbucket Cloud push and a pull request
// created.
func bitbucketStream(in *inputs) []sim.Request {
	at := clock(start, step)
	id := func(name string) string { return newID("bitbucket/" + name) }

	push := in.bitbucket(delivery{at: at(), id: id("push"), event: "repo:push", body: in.bodies[bitbucketPush]})
	push.Expect = expect(http.StatusOK, bitbucketPushBinding)

	created := in.bitbucket(delivery{at: at(), id: id("pull-request-created"), event: "pullrequest:created", body: in.bodies[bitbucketPullRequestCreated]})
	created.Expect = expect(http.StatusOK)

	return []sim.Request{push, created}
}

// bitbucketServerStream returns a Bitbucket Server push (refs changed) and a
// pull request opened.
func bitbucketServerStream(in *inputs) []sim.Request {
	at := clock(start, step)
	id := func(name string) string { return newID("bitbucket-server/" + name) }

	refsChanged := in.bitbucketServer(delivery{at: at(), id: id("refs-changed"), event: "repo:refs_changed", body: in.bodies[bitbucketServerRefsChanged]})
	refsChanged.Expect = expect(http.StatusOK, bitbucketServerPushTemplate)

	opened := in.bitbucketServer(delivery{at: at(), id: id("pull-request-opened"), event: "pr:opened", body: in.bodies[bitbucketServerPROpened]})
	opened.Expect = expect(http.StatusOK)

	return []sim.Request{refsChanged, opened}
}

// bearerStream returns events sent with a bearer token to the reference
// template event-consumer, which starts only for the admin, a non-empty
// message and the header X-Argo-E2E: true.
func bearerStream() []sim.Request {
	at := clock(start, step)
	id := func(name string) string { return newID("bearer/" + name) }

	reference := bearer(at(), eventsPath, []byte(referenceMessageBody), adminSubject, id("reference"), true)
	reference.Expect = expect(http.StatusOK, eventConsumerTemplate)

	emptyMessage := bearer(at(), eventsPath, []byte(`{"message":""}`), adminSubject, id("empty-message"), true)
	emptyMessage.Expect = expect(http.StatusOK)

	withoutHeader := bearer(at(), eventsPath, []byte(referenceMessageBody), adminSubject, id("without-header"), false)
	withoutHeader.Expect = expect(http.StatusOK)

	// The body is read after authentication, so the caller is known.
	invalidJSON := bearer(at(), eventsPath, []byte(`{"message":"hello events"`), adminSubject, "", true)
	invalidJSON.Expect = expect(http.StatusBadRequest)

	// github-token may use namespace argo only.
	otherNamespace := bearer(at(), "/api/v1/events/"+namespaceNotAllowed, []byte(referenceMessageBody), namespacedSubject, "", true)
	otherNamespace.Expect = expect(http.StatusForbidden)

	return []sim.Request{reference, emptyMessage, withoutHeader, invalidJSON, otherNamespace}
}

// The burst: burstEvents requests received within burstSpan.
const (
	burstEvents = 500
	burstSpan   = 2 * time.Second
)

// burstStream returns burstEvents requests, one in each equal slot of
// burstSpan, at a pseudo-random offset within the slot. They repeat a mix
// of 20: 10 GitHub pushes, 6 bearer events to event-consumer, and one each
// of a GitLab push, a Bitbucket Cloud push, a Bitbucket Server push and a
// GitHub pull request synchronize. Every delivery has its own ID, so every
// request is a new event. The requests carry no expectation, because a
// replay in time with a small pipeline may reject some of them with 503.
func burstStream(in *inputs, branchPush []byte) []sim.Request {
	slot := burstSpan / burstEvents
	requests := make([]sim.Request, 0, burstEvents)
	for i := range burstEvents {
		name := fmt.Sprintf("burst/%d", i)
		d := delivery{at: start.Add(time.Duration(i)*slot + offset(name, slot)), id: newID(name)}

		var req sim.Request
		switch kind := i % 20; {
		case kind < 10:
			d.event, d.body = "push", branchPush
			req = in.gitHub(d)
		case kind < 16:
			body := fmt.Sprintf(`{"message":"burst event %d"}`, i)
			req = bearer(d.at, eventsPath, []byte(body), adminSubject, d.id, true)
		case kind == 16:
			d.event, d.body = "Push Hook", in.bodies[gitLabPush]
			req = in.gitLab(d)
		case kind == 17:
			d.event, d.body = "repo:push", in.bodies[bitbucketPush]
			req = in.bitbucket(d)
		case kind == 18:
			d.event, d.body = "repo:refs_changed", in.bodies[bitbucketServerRefsChanged]
			req = in.bitbucketServer(d)
		default:
			d.event, d.body = "pull_request", in.bodies[gitHubPullRequestSynchronize]
			req = in.gitHub(d)
		}
		requests = append(requests, req)
	}
	return requests
}

// offset returns a duration in [0, limit) derived from name, the same on
// every run.
func offset(name string, limit time.Duration) time.Duration {
	sum := sha256.Sum256([]byte(name))
	return time.Duration(binary.BigEndian.Uint64(sum[:8]) % uint64(limit))
}
