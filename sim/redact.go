package sim

import (
	"net/url"
	"strings"
)

// secretHeaders are the headers that carry a credential, although their
// names contain no secret word: bearer tokens, cookies, webhook signatures
// and Bitbucket Cloud's webhook UUID, which wfevents checks as a secret.
// The names are lowercase.
var secretHeaders = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"x-hub-signature":     true,
	"x-hub-signature-256": true,
	"x-gitlab-token":      true,
	"x-hook-uuid":         true,
}

// keptHeaders are never redacted, because replay needs them: the event ID
// derives from the idempotency key or the sender's delivery ID.
var keptHeaders = map[string]bool{
	"idempotency-key":     true,
	"x-github-delivery":   true,
	"x-gitlab-event-uuid": true,
	"x-request-uuid":      true,
}

// secretWords mark a header or query parameter as a credential when its
// lowercase name contains one of them.
var secretWords = []string{"token", "secret", "password", "signature", "api-key", "api_key", "apikey"}

// Redact replaces with Redacted, in place, every non-empty value of the
// headers and query parameters of req that carry a credential:
//
//   - the headers Authorization, Proxy-Authorization, Cookie, Set-Cookie,
//     X-Hub-Signature, X-Hub-Signature-256, X-Gitlab-Token and X-Hook-UUID;
//   - every other header and query parameter whose lowercase name contains
//     token, secret, password, signature, api-key, api_key or apikey;
//   - the query parameter key.
//
// Idempotency-Key, X-GitHub-Delivery, X-Gitlab-Event-UUID and
// X-Request-UUID are kept, because the event ID derives from them. The
// number of values of a header is kept, and so are empty values, so a
// replay can tell a missing credential from a wrong one.
//
// The body is not changed, because webhook signatures cover its exact
// bytes, so a secret inside the body stays in the recording.
func Redact(req *Request) {
	for name, values := range req.Headers {
		if !isSecretHeader(name) {
			continue
		}
		redacted := make([]string, len(values))
		for i, value := range values {
			if value != "" {
				value = Redacted
			}
			redacted[i] = value
		}
		req.Headers[name] = redacted
	}
	req.Path = redactQuery(req.Path)
}

func isSecretHeader(name string) bool {
	name = strings.ToLower(name)
	if keptHeaders[name] {
		return false
	}
	return secretHeaders[name] || containsSecretWord(name)
}

func isSecretQueryParameter(name string) bool {
	name = strings.ToLower(name)
	return name == "key" || containsSecretWord(name)
}

func containsSecretWord(name string) bool {
	for _, word := range secretWords {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// redactQuery replaces the values of secret query parameters in target, a
// path and query, and leaves every other byte as it was, so the order and
// escaping of the other parameters survive.
func redactQuery(target string) string {
	path, query, found := strings.Cut(target, "?")
	if !found || query == "" {
		return target
	}

	pairs := strings.Split(query, "&")
	for i, pair := range pairs {
		rawName, value, hasValue := strings.Cut(pair, "=")
		if !hasValue || value == "" {
			continue
		}
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			// Check the name as sent, which still contains any plain secret word.
			name = rawName
		}
		if isSecretQueryParameter(name) {
			pairs[i] = rawName + "=" + Redacted
		}
	}
	return path + "?" + strings.Join(pairs, "&")
}
