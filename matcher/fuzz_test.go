package matcher

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeJSON checks that DecodeJSON never panics, accepts only what
// encoding/json accepts, and keeps every integer that fits in int64 exact.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{``, `null`, `{}`, `{"a":1}`, `[1,2.5,"x",true,null]`, `9007199254740993`,
		`-9223372036854775808`, `1e400`, `{"a":"\u00e9"}`, `{} x`, `{"a":[{"b":{}}]}`, "\xff", `"\ud800"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		value, err := DecodeJSON(body)
		if err != nil {
			return
		}
		if len(strings.Trim(string(body), jsonWhitespace)) > 0 && !json.Valid(body) {
			t.Fatalf("DecodeJSON accepted %q, which encoding/json rejects", body)
		}
		// Encoding the value and decoding it again gives the same JSON:
		// nothing, and no integer digit, is lost on the way.
		encoded, err := encodeJSON(value)
		if err != nil {
			t.Fatalf("decoded value of %q cannot be encoded: %v", body, err)
		}
		again, err := DecodeJSON([]byte(encoded))
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", encoded, err)
		}
		reencoded, err := encodeJSON(again)
		if err != nil || reencoded != encoded {
			t.Fatalf("round trip of %q changed %q to %q", body, encoded, reencoded)
		}
	})
}

// FuzzFilterHeaders checks that no header set makes FilterHeaders keep a
// name without the x- prefix, an upper-case key or a secret-bearing header.
func FuzzFilterHeaders(f *testing.F) {
	f.Add("X-Argo-E2E", "true", "Authorization", "Bearer t")
	f.Add("x-hub-signature-256", "sha256=00", "X-GITLAB-TOKEN", "secret")
	f.Add("X-Hook-UUID", "u", "Cookie", "c=1")
	f.Fuzz(func(t *testing.T, name1, value1, name2, value2 string) {
		filtered := FilterHeaders(map[string][]string{name1: {value1}, name2: {value2}})
		for key := range filtered {
			if key != strings.ToLower(key) || !strings.HasPrefix(key, "x-") || secretHeaders[key] {
				t.Fatalf("FilterHeaders kept %q from %q and %q", key, name1, name2)
			}
		}
	})
}
