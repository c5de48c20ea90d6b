package model

// WebhookClientsSecret is the name of the Secret that lists a namespace's
// webhook clients, the same name Argo Workflows reads. Each key is a
// ServiceAccount name and each value a YAML mapping with type and secret.
const WebhookClientsSecret = "argo-workflows-webhook-clients"

// WebhookType names how a webhook sender proves that it holds a client's
// secret.
type WebhookType string

// The webhook types that Argo Workflows accepts in its webhook-clients Secret.
const (
	// WebhookGitHub signs the body: X-Hub-Signature-256 is "sha256=" and
	// the hex HMAC-SHA256 of the body keyed with the secret.
	WebhookGitHub WebhookType = "github"
	// WebhookGitLab sends the secret itself in X-Gitlab-Token.
	WebhookGitLab WebhookType = "gitlab"
	// WebhookBitbucket (Bitbucket Cloud) sends the hook's UUID, which is the
	// secret, in X-Hook-UUID.
	WebhookBitbucket WebhookType = "bitbucket"
	// WebhookBitbucketServer signs the body like GitHub, in X-Hub-Signature.
	WebhookBitbucketServer WebhookType = "bitbucketserver"
)

// WebhookTypes lists the known webhook types, for messages.
var WebhookTypes = []WebhookType{WebhookGitHub, WebhookGitLab, WebhookBitbucket, WebhookBitbucketServer}

// Known reports whether t is one of WebhookTypes.
func (t WebhookType) Known() bool {
	switch t {
	case WebhookGitHub, WebhookGitLab, WebhookBitbucket, WebhookBitbucketServer:
		return true
	}
	return false
}

// WebhookClient is a sender that cannot send an Authorization header, such as
// a GitHub repository hook. A delivery that proves it holds Secret acts as the
// ServiceAccount Name in the namespace the delivery is sent to.
type WebhookClient struct {
	// Name is the ServiceAccount's name.
	Name   string
	Type   WebhookType
	Secret Token
}

// Groups every Kubernetes ServiceAccount belongs to, besides the group of its
// own namespace.
const (
	GroupServiceAccounts = "system:serviceaccounts"
	GroupAuthenticated   = "system:authenticated"
)

// ServiceAccountIdentity returns the identity of the ServiceAccount
// namespace/name as Kubernetes authenticates it: its user name and groups. It
// may use namespace only. So where the Authorizer decides from the identity
// alone, as in the embedded mode, the ServiceAccount cannot send events to
// other namespaces.
func ServiceAccountIdentity(namespace, name string) Identity {
	return Identity{
		Subject:    "system:serviceaccount:" + namespace + ":" + name,
		Groups:     []string{GroupServiceAccounts, GroupServiceAccounts + ":" + namespace, GroupAuthenticated},
		Namespaces: []string{namespace},
	}
}
