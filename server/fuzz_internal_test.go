package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/wfevents/wfevents/model"
)

// FuzzVerifySignature checks that no header value makes verification panic,
// that the correct signature of any body verifies, and that a signature
// made with another secret never does.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(`{"zen":"Keep it logically awesome."}`), "github-webhook-secret", "sha256=abc")
	f.Add([]byte(``), "s", "sha256=")
	f.Add([]byte(`{}`), "s", "sha1=0000000000000000000000000000000000000000")
	f.Add([]byte("\xff\x00"), "secret", "sha256=zz")
	f.Fuzz(func(t *testing.T, body []byte, secret, arbitrary string) {
		if secret == "" {
			return
		}
		for _, typ := range []model.WebhookType{model.WebhookGitHub, model.WebhookBitbucketServer} {
			client := model.WebhookClient{Name: "ci", Type: typ, Secret: model.Token(secret)}
			header := signatureHeaderName(typ)

			// An arbitrary header value must not panic, whatever it holds.
			verifySignature(client, http.Header{header: {arbitrary}}, body)

			good := "sha256=" + hmacHex(secret, body)
			if !verifySignature(client, http.Header{header: {good}}, body) {
				t.Fatalf("%s: the correct signature of %q did not verify", typ, body)
			}
			other := "sha256=" + hmacHex(secret+"x", body)
			if verifySignature(client, http.Header{header: {other}}, body) {
				t.Fatalf("%s: a signature made with another secret verified", typ)
			}
		}
	})
}

func signatureHeaderName(typ model.WebhookType) string {
	if typ == model.WebhookGitHub {
		return "X-Hub-Signature-256"
	}
	return "X-Hub-Signature"
}

func hmacHex(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
