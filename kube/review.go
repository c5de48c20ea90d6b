package kube

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wfevents/wfevents/model"
)

// ReviewConfig configures a Reviewer. The zero value is usable.
type ReviewConfig struct {
	// CacheTTL is how long a review result is reused. Zero means
	// DefaultReviewCacheTTL.
	CacheTTL time.Duration

	// CacheSize bounds each of the two caches, in entries. Zero means
	// DefaultReviewCacheSize.
	CacheSize int

	// Audiences are the audiences a token must be valid for. Empty means
	// the API server's own.
	Audiences []string
}

// Defaults for the zero values of ReviewConfig.
const (
	DefaultReviewCacheTTL  = 10 * time.Second
	DefaultReviewCacheSize = 4096
)

// ReviewStats counts cache use since the Reviewer was created.
type ReviewStats struct {
	TokenHits, TokenMisses   uint64
	AccessHits, AccessMisses uint64
}

// Reviewer authenticates callers with TokenReview and authorizes them with
// SubjectAccessReview, caching both briefly. It is safe for concurrent use.
type Reviewer struct {
	client    kubernetes.Interface
	audiences []string

	// tokens is keyed by the SHA-256 of the token, so no token is kept in
	// memory longer than a request.
	tokens *expirable.LRU[[sha256.Size]byte, tokenReview]
	access *expirable.LRU[string, bool]

	tokenHits, tokenMisses   atomic.Uint64
	accessHits, accessMisses atomic.Uint64
}

type tokenReview struct {
	identity      model.Identity
	authenticated bool
}

// NewReviewer returns a Reviewer that sends its reviews through client.
func NewReviewer(client kubernetes.Interface, cfg ReviewConfig) *Reviewer {
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultReviewCacheTTL
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultReviewCacheSize
	}
	return &Reviewer{
		client:    client,
		audiences: cfg.Audiences,
		tokens:    expirable.NewLRU[[sha256.Size]byte, tokenReview](cfg.CacheSize, nil, cfg.CacheTTL),
		access:    expirable.NewLRU[string, bool](cfg.CacheSize, nil, cfg.CacheTTL),
	}
}

// Authenticate sends a TokenReview for token. A token the API server rejects
// is a *model.Error with code model.CodeUnauthenticated. Both outcomes are
// cached; a failed review is not.
func (r *Reviewer) Authenticate(ctx context.Context, token model.Token) (model.Identity, error) {
	if identity, found, err := r.AuthenticateFromMemory(token); found {
		return identity, err
	}

	r.tokenMisses.Add(1)
	review, err := r.reviewToken(ctx, token)
	if err != nil {
		return model.Identity{}, err
	}
	r.tokens.Add(sha256.Sum256([]byte(token)), review)
	return review.result()
}

// AuthenticateFromMemory returns the cached outcome of token's review, and
// whether there was one. It never calls the API server.
func (r *Reviewer) AuthenticateFromMemory(token model.Token) (model.Identity, bool, error) {
	review, cached := r.tokens.Get(sha256.Sum256([]byte(token)))
	if !cached {
		return model.Identity{}, false, nil
	}
	r.tokenHits.Add(1)
	identity, err := review.result()
	return identity, true, err
}

// result returns the identity a review found, or the error for a rejected
// token.
func (review tokenReview) result() (model.Identity, error) {
	if !review.authenticated {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated, "token was rejected by the cluster: send a valid service account or user token")
	}

	// The cached entry is shared, so the caller gets its own groups.
	identity := review.identity
	identity.Groups = slices.Clone(identity.Groups)
	return identity, nil
}

func (r *Reviewer) reviewToken(ctx context.Context, token model.Token) (tokenReview, error) {
	request := &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: string(token), Audiences: r.audiences},
	}
	response, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, request, metav1.CreateOptions{})
	if err != nil {
		return tokenReview{}, classifyReview("create tokenreviews", err)
	}

	status := response.Status
	if !status.Authenticated {
		return tokenReview{}, nil
	}
	// A token valid only for other audiences is not valid here. The
	// TokenReview API documents that clients setting spec.audiences must
	// check the audiences returned.
	if len(r.audiences) > 0 && !slices.ContainsFunc(status.Audiences, func(audience string) bool {
		return slices.Contains(r.audiences, audience)
	}) {
		return tokenReview{}, nil
	}
	return tokenReview{
		authenticated: true,
		identity: model.Identity{
			Subject: status.User.Username,
			UID:     status.User.UID,
			Groups:  slices.Clone(status.User.Groups),
		},
	}, nil
}

// MayCreateWorkflows sends a SubjectAccessReview asking whether caller may
// create workflows.argoproj.io in namespace, or in every namespace when
// namespace is empty. Answers are cached per caller and namespace.
func (r *Reviewer) MayCreateWorkflows(ctx context.Context, caller model.Identity, namespace string) (bool, error) {
	if allowed, found := r.MayCreateWorkflowsFromMemory(caller, namespace); found {
		return allowed, nil
	}
	r.accessMisses.Add(1)
	key := accessKey(caller, namespace)

	request := &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   caller.Subject,
			UID:    caller.UID,
			Groups: caller.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace,
				Verb:      "create",
				Group:     WorkflowsResource.Group,
				Resource:  WorkflowsResource.Resource,
			},
		},
	}
	response, err := r.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, request, metav1.CreateOptions{})
	if err != nil {
		return false, classifyReview(fmt.Sprintf("create subjectaccessreviews for namespace %q", namespace), err)
	}

	allowed := response.Status.Allowed && !response.Status.Denied
	r.access.Add(key, allowed)
	return allowed, nil
}

// MayCreateWorkflowsFromMemory returns the cached decision for caller and
// namespace, and whether there was one. It never calls the API server.
func (r *Reviewer) MayCreateWorkflowsFromMemory(caller model.Identity, namespace string) (allowed, found bool) {
	allowed, found = r.access.Get(accessKey(caller, namespace))
	if found {
		r.accessHits.Add(1)
	}
	return allowed, found
}

// accessKey identifies a caller and namespace. Fields are joined with a NUL
// byte, which no user name, group or namespace contains.
func accessKey(caller model.Identity, namespace string) string {
	return strings.Join(append([]string{namespace, caller.Subject, caller.UID}, caller.Groups...), "\x00")
}

// Stats returns the cache counters.
func (r *Reviewer) Stats() ReviewStats {
	return ReviewStats{
		TokenHits:    r.tokenHits.Load(),
		TokenMisses:  r.tokenMisses.Load(),
		AccessHits:   r.accessHits.Load(),
		AccessMisses: r.accessMisses.Load(),
	}
}

// classifyReview classifies a failed review. A 403 here means wfevents' own
// role lacks the permission, which is the operator's to fix, so the sender
// gets an internal error rather than "permission denied".
func classifyReview(operation string, err error) error {
	if apierrors.IsForbidden(err) {
		return &model.Error{Code: model.CodeInternal, Message: operation + " failed", Err: fmt.Errorf("the server's service account may not %s: check its ClusterRole: %w", operation, err)}
	}
	return classify(operation, err)
}
