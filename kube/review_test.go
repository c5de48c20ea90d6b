package kube

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// ciUser is the user the fake API server returns for ciToken.
var ciUser = authenticationv1.UserInfo{
	Username: "system:serviceaccount:argo:ci",
	UID:      "uid-ci",
	Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:argo", "system:authenticated"},
	Extra:    map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"ci-0"}},
}

const ciToken = "token-ci-5f3a9c"

// newTokenReviewClient returns a fake clientset that handles TokenReviews: a
// token in users is authenticated as that user and any other is rejected.
// When fail is set and returns an error for a call, that call fails with it.
func newTokenReviewClient(t testing.TB, users map[string]authenticationv1.UserInfo, fail func(call int) error) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	calls := 0
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if fail != nil {
			if err := fail(calls); err != nil {
				return true, nil, err
			}
		}
		request := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		response := request.DeepCopy()
		user, ok := users[request.Spec.Token]
		response.Status = authenticationv1.TokenReviewStatus{Authenticated: ok, User: user, Audiences: request.Spec.Audiences}
		if !ok {
			response.Status.Error = "invalid bearer token"
		}
		return true, response, nil
	})
	return client
}

// reviewedTokens returns the token of every TokenReview sent, in order.
func reviewedTokens(t testing.TB, client *fake.Clientset) []string {
	t.Helper()
	var tokens []string
	for _, action := range client.Actions() {
		if action.GetVerb() != "create" || action.GetResource().Resource != "tokenreviews" {
			continue
		}
		review := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		tokens = append(tokens, review.Spec.Token)
	}
	return tokens
}

func TestAuthenticateReturnsIdentity(t *testing.T) {
	client := newTokenReviewClient(t, map[string]authenticationv1.UserInfo{ciToken: ciUser}, nil)
	reviewer := NewReviewer(client, ReviewConfig{Audiences: []string{"wfevents"}})

	identity, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)

	assert.Equal(t, model.Identity{Subject: ciUser.Username, UID: ciUser.UID, Groups: ciUser.Groups}, identity)
	require.Len(t, client.Actions(), 1)
	review := client.Actions()[0].(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
	assert.Equal(t, authenticationv1.TokenReviewSpec{Token: ciToken, Audiences: []string{"wfevents"}}, review.Spec)

	// The identity is what expressions see as metadata.claimSet.
	env := matcher.NewEnv(model.Event{Namespace: "argo", Caller: identity})
	assert.Equal(t, map[string]any{
		"sub":                       "system:serviceaccount:argo:ci",
		"groups":                    ciUser.Groups,
		"service_account_namespace": "argo",
		"service_account_name":      "ci",
	}, env.Metadata["claimSet"])
}

func TestAuthenticateRejectedToken(t *testing.T) {
	client := newTokenReviewClient(t, nil, nil)
	reviewer := NewReviewer(client, ReviewConfig{})

	identity, err := reviewer.Authenticate(t.Context(), ciToken)

	require.Error(t, err)
	assert.Zero(t, identity)
	assert.Equal(t, model.CodeUnauthenticated, model.ErrorCode(err))
	assert.NotContains(t, err.Error(), ciToken)
	assert.NotContains(t, model.ErrorMessage(err), ciToken)

	// A rejection is cached like an identity.
	_, err = reviewer.Authenticate(t.Context(), ciToken)
	assert.Equal(t, model.CodeUnauthenticated, model.ErrorCode(err))
	assert.Len(t, reviewedTokens(t, client), 1)
}

func TestAuthenticateAPIErrorNotCached(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantCode model.Code
	}{
		{name: "internal error", err: apierrors.NewInternalError(errors.New("etcd unreachable")), wantCode: model.CodeUnavailable},
		{name: "too many requests", err: apierrors.NewTooManyRequests("slow down", 1), wantCode: model.CodeUnavailable},
		{name: "service unavailable", err: apierrors.NewServiceUnavailable("starting"), wantCode: model.CodeUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			failFirst := func(call int) error {
				if call == 1 {
					return tc.err
				}
				return nil
			}
			client := newTokenReviewClient(t, map[string]authenticationv1.UserInfo{ciToken: ciUser}, failFirst)
			reviewer := NewReviewer(client, ReviewConfig{})

			_, err := reviewer.Authenticate(t.Context(), ciToken)
			require.Error(t, err)
			assert.Equal(t, tc.wantCode, model.ErrorCode(err))
			assert.ErrorIs(t, err, tc.err)
			assert.NotContains(t, err.Error(), ciToken)

			identity, err := reviewer.Authenticate(t.Context(), ciToken)
			require.NoError(t, err, "the failure must not be cached")
			assert.Equal(t, ciUser.Username, identity.Subject)
			assert.Len(t, reviewedTokens(t, client), 2)
		})
	}
}

func TestAuthenticateCachesByToken(t *testing.T) {
	users := map[string]authenticationv1.UserInfo{ciToken: ciUser, "token-admin": {Username: "admin"}}
	client := newTokenReviewClient(t, users, nil)
	reviewer := NewReviewer(client, ReviewConfig{})

	first, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)
	second, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)

	assert.Equal(t, first, second)
	assert.Equal(t, []string{ciToken}, reviewedTokens(t, client), "the second call is served from the cache")
	assert.Equal(t, ReviewStats{TokenHits: 1, TokenMisses: 1}, reviewer.Stats())

	admin, err := reviewer.Authenticate(t.Context(), "token-admin")
	require.NoError(t, err)
	assert.Equal(t, "admin", admin.Subject)
	assert.Equal(t, []string{ciToken, "token-admin"}, reviewedTokens(t, client))
	assert.Equal(t, ReviewStats{TokenHits: 1, TokenMisses: 2}, reviewer.Stats())
}

func TestAuthenticateCacheKeyIsHash(t *testing.T) {
	client := newTokenReviewClient(t, map[string]authenticationv1.UserInfo{ciToken: ciUser}, nil)
	reviewer := NewReviewer(client, ReviewConfig{})

	_, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)

	assert.Equal(t, [][sha256.Size]byte{sha256.Sum256([]byte(ciToken))}, reviewer.tokens.Keys())
	for _, review := range reviewer.tokens.Values() {
		assert.NotContains(t, review.identity.Subject, ciToken)
		assert.NotContains(t, review.identity.UID, ciToken)
		assert.NotContains(t, review.identity.Groups, ciToken)
	}
}

func TestAuthenticateCacheExpires(t *testing.T) {
	client := newTokenReviewClient(t, map[string]authenticationv1.UserInfo{ciToken: ciUser}, nil)
	reviewer := NewReviewer(client, ReviewConfig{CacheTTL: 10 * time.Millisecond})

	_, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		_, err := reviewer.Authenticate(t.Context(), ciToken)
		return err == nil && len(reviewedTokens(t, client)) == 2
	}, 5*time.Second, 5*time.Millisecond, "the token is reviewed again once the entry expires")
	assert.Equal(t, uint64(2), reviewer.Stats().TokenMisses)
}

func TestAuthenticateCacheBounded(t *testing.T) {
	users := map[string]authenticationv1.UserInfo{"token-a": {Username: "a"}, "token-b": {Username: "b"}, "token-c": {Username: "c"}}
	client := newTokenReviewClient(t, users, nil)
	reviewer := NewReviewer(client, ReviewConfig{CacheSize: 2})

	for _, token := range []model.Token{"token-a", "token-b", "token-c", "token-a", "token-c"} {
		_, err := reviewer.Authenticate(t.Context(), token)
		require.NoError(t, err, "token %q", string(token))
	}

	assert.Equal(t, []string{"token-a", "token-b", "token-c", "token-a"}, reviewedTokens(t, client),
		"token-a is evicted by token-c and reviewed again, and token-c stays cached")
	assert.Equal(t, ReviewStats{TokenHits: 1, TokenMisses: 4}, reviewer.Stats())
}

// accessDecision is the fake API server's decision for one SubjectAccessReview.
type accessDecision struct {
	allowed, denied bool
	err             error
}

// newAccessReviewClient returns a fake clientset that responds to each
// SubjectAccessReview with decide's result for its spec.
func newAccessReviewClient(t testing.TB, decide func(spec authorizationv1.SubjectAccessReviewSpec) accessDecision) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		request := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		decision := decide(request.Spec)
		if decision.err != nil {
			return true, nil, decision.err
		}
		response := request.DeepCopy()
		response.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: decision.allowed, Denied: decision.denied}
		return true, response, nil
	})
	return client
}

// accessReviews returns the spec of every SubjectAccessReview sent, in order.
func accessReviews(t testing.TB, client *fake.Clientset) []authorizationv1.SubjectAccessReviewSpec {
	t.Helper()
	var specs []authorizationv1.SubjectAccessReviewSpec
	for _, action := range client.Actions() {
		if action.GetVerb() != "create" || action.GetResource().Resource != "subjectaccessreviews" {
			continue
		}
		specs = append(specs, action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).Spec)
	}
	return specs
}

func allowAll(authorizationv1.SubjectAccessReviewSpec) accessDecision {
	return accessDecision{allowed: true}
}

var ciCaller = model.Identity{Subject: ciUser.Username, UID: ciUser.UID, Groups: ciUser.Groups}

func TestMayCreateWorkflowsRequest(t *testing.T) {
	cases := []struct {
		name          string
		namespace     string
		wantNamespace string
	}{
		{name: "namespace", namespace: "team-a", wantNamespace: "team-a"},
		{name: "cluster-wide", namespace: "", wantNamespace: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := newAccessReviewClient(t, allowAll)
			reviewer := NewReviewer(client, ReviewConfig{})

			allowed, err := reviewer.MayCreateWorkflows(t.Context(), ciCaller, tc.namespace)
			require.NoError(t, err)

			assert.True(t, allowed)
			assert.Equal(t, []authorizationv1.SubjectAccessReviewSpec{{
				User:   "system:serviceaccount:argo:ci",
				UID:    "uid-ci",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:argo", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: tc.wantNamespace,
					Verb:      "create",
					Group:     "argoproj.io",
					Resource:  "workflows",
				},
			}}, accessReviews(t, client))
		})
	}
}

func TestMayCreateWorkflowsDecision(t *testing.T) {
	cases := []struct {
		name     string
		decision accessDecision
		want     bool
	}{
		{name: "allowed", decision: accessDecision{allowed: true}, want: true},
		{name: "no opinion", decision: accessDecision{}, want: false},
		{name: "denied", decision: accessDecision{denied: true}, want: false},
		{name: "denied wins over allowed", decision: accessDecision{allowed: true, denied: true}, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := newAccessReviewClient(t, func(authorizationv1.SubjectAccessReviewSpec) accessDecision { return tc.decision })
			reviewer := NewReviewer(client, ReviewConfig{})

			allowed, err := reviewer.MayCreateWorkflows(t.Context(), ciCaller, "team-a")

			require.NoError(t, err)
			assert.Equal(t, tc.want, allowed)
		})
	}
}

func TestMayCreateWorkflowsCaches(t *testing.T) {
	client := newAccessReviewClient(t, func(spec authorizationv1.SubjectAccessReviewSpec) accessDecision {
		return accessDecision{allowed: spec.ResourceAttributes.Namespace == "team-a"}
	})
	reviewer := NewReviewer(client, ReviewConfig{})
	otherGroups := model.Identity{Subject: ciCaller.Subject, UID: ciCaller.UID, Groups: []string{"system:authenticated"}}

	calls := []struct {
		caller    model.Identity
		namespace string
		want      bool
	}{
		{caller: ciCaller, namespace: "team-a", want: true},
		{caller: ciCaller, namespace: "team-a", want: true},
		{caller: ciCaller, namespace: "team-b", want: false},
		{caller: ciCaller, namespace: "team-b", want: false},
		{caller: ciCaller, namespace: "", want: false},
		{caller: otherGroups, namespace: "team-a", want: true},
	}
	for i, call := range calls {
		allowed, err := reviewer.MayCreateWorkflows(t.Context(), call.caller, call.namespace)
		require.NoError(t, err, "call %d", i)
		assert.Equal(t, call.want, allowed, "call %d", i)
	}

	type review struct {
		namespace string
		groups    []string
	}
	var reviews []review
	for _, spec := range accessReviews(t, client) {
		reviews = append(reviews, review{namespace: spec.ResourceAttributes.Namespace, groups: spec.Groups})
	}
	assert.Equal(t, []review{
		{namespace: "team-a", groups: ciCaller.Groups},
		{namespace: "team-b", groups: ciCaller.Groups},
		{namespace: "", groups: ciCaller.Groups},
		{namespace: "team-a", groups: otherGroups.Groups},
	}, reviews, "one review per caller and namespace, denials included")
	assert.Equal(t, ReviewStats{AccessHits: 2, AccessMisses: 4}, reviewer.Stats())
}

func TestMayCreateWorkflowsAPIError(t *testing.T) {
	resource := schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}
	cases := []struct {
		name     string
		err      error
		wantCode model.Code
	}{
		{name: "too many requests", err: apierrors.NewTooManyRequests("slow down", 1), wantCode: model.CodeUnavailable},
		{name: "internal error", err: apierrors.NewInternalError(errors.New("webhook down")), wantCode: model.CodeUnavailable},
		{name: "server may not review", err: apierrors.NewForbidden(resource, "", errors.New("no create")), wantCode: model.CodeInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			client := newAccessReviewClient(t, func(authorizationv1.SubjectAccessReviewSpec) accessDecision {
				calls++
				if calls == 1 {
					return accessDecision{err: tc.err}
				}
				return accessDecision{allowed: true}
			})
			reviewer := NewReviewer(client, ReviewConfig{})

			allowed, err := reviewer.MayCreateWorkflows(t.Context(), ciCaller, "team-a")
			require.Error(t, err)
			assert.False(t, allowed)
			assert.Equal(t, tc.wantCode, model.ErrorCode(err))
			assert.ErrorIs(t, err, tc.err)
			assert.Contains(t, err.Error(), `namespace "team-a"`)

			allowed, err = reviewer.MayCreateWorkflows(t.Context(), ciCaller, "team-a")
			require.NoError(t, err, "the failure must not be cached")
			assert.True(t, allowed)
			assert.Len(t, accessReviews(t, client), 2)
		})
	}
}

func TestAuthenticateCopiesGroups(t *testing.T) {
	client := newTokenReviewClient(t, map[string]authenticationv1.UserInfo{ciToken: ciUser}, nil)
	reviewer := NewReviewer(client, ReviewConfig{})
	first, err := reviewer.Authenticate(t.Context(), ciToken)
	require.NoError(t, err)

	first.Groups[0] = "system:masters"
	second, err := reviewer.Authenticate(t.Context(), ciToken)

	require.NoError(t, err)
	assert.Equal(t, ciUser.Groups, second.Groups, "a caller changing its groups must not change the cached identity")
}

func TestAuthenticateOtherAudience(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		response := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		response.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: ciUser, Audiences: []string{"https://kubernetes.default.svc"}}
		return true, response, nil
	})
	reviewer := NewReviewer(client, ReviewConfig{Audiences: []string{"wfevents"}})

	_, err := reviewer.Authenticate(t.Context(), ciToken)

	assert.Equal(t, model.CodeUnauthenticated, model.ErrorCode(err), "a token for another audience is not valid here")
}

func TestReviewFromMemoryOnlyAfterReview(t *testing.T) {
	client := newTokenReviewClient(t, nil, nil)
	reviewer := NewReviewer(client, ReviewConfig{})

	_, found, _ := reviewer.AuthenticateFromMemory(ciToken)
	assert.False(t, found, "nothing is known before the first review")

	_, err := reviewer.Authenticate(t.Context(), ciToken)
	require.Error(t, err)
	_, found, err = reviewer.AuthenticateFromMemory(ciToken)
	assert.True(t, found)
	assert.Equal(t, model.CodeUnauthenticated, model.ErrorCode(err), "a cached rejection stays a rejection")
	assert.Len(t, reviewedTokens(t, client), 1)

	access := NewReviewer(newAccessReviewClient(t, allowAll), ReviewConfig{})
	_, found = access.MayCreateWorkflowsFromMemory(ciCaller, "team-a")
	assert.False(t, found)
	_, err = access.MayCreateWorkflows(t.Context(), ciCaller, "team-a")
	require.NoError(t, err)
	allowed, found := access.MayCreateWorkflowsFromMemory(ciCaller, "team-a")
	assert.True(t, found)
	assert.True(t, allowed)
	assert.Equal(t, ReviewStats{AccessHits: 1, AccessMisses: 1}, access.Stats())
}
