package matcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/wfevents/wfevents/model"
)

// Env is the environment every expression is evaluated in. The expr tags are
// the names expressions use.
type Env struct {
	// Event is the JSON body, under the name of the original events design.
	Event any `expr:"event"`

	// Payload is the same value under the name Argo's server uses.
	Payload any `expr:"payload"`

	// Metadata holds "claimSet" and one key per filtered header.
	Metadata map[string]any `expr:"metadata"`

	Discriminator string `expr:"discriminator"`
	Namespace     string `expr:"namespace"`

	// Sprig holds Sprig's generic functions, called as sprig.<name>.
	Sprig map[string]any `expr:"sprig"`
}

// secretHeaders are headers that carry webhook secrets or signatures. They
// start with "x-" but must never reach an expression, because an expression
// result can end up in a Workflow parameter that anyone with read access can read.
var secretHeaders = map[string]bool{
	"x-gitlab-token":      true,
	"x-hook-uuid":         true,
	"x-hub-signature":     true,
	"x-hub-signature-256": true,
}

// NewEnv builds the expression environment for ev.
func NewEnv(ev model.Event) *Env {
	metadata := FilterHeaders(ev.Headers)
	metadata["claimSet"] = claimSet(ev.Caller)

	return &Env{
		Event:         ev.Payload,
		Payload:       ev.Payload,
		Metadata:      metadata,
		Discriminator: ev.Discriminator,
		Namespace:     ev.Namespace,
		Sprig:         sprigFunctions,
	}
}

// FilterHeaders returns the headers an expression may see: those whose name
// starts with "x-", keyed by the lowercased name, with each value the list of
// strings received in order. Secret-bearing headers are left out.
//
// Keys that differ only in case are merged in the sorted order of the original
// keys, so the result does not depend on map iteration order.
func FilterHeaders(headers map[string][]string) map[string]any {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)

	filtered := make(map[string]any, len(headers)+1)
	for _, name := range names {
		key := strings.ToLower(name)
		if !strings.HasPrefix(key, "x-") || secretHeaders[key] {
			continue
		}
		previous, _ := filtered[key].([]string)
		filtered[key] = append(previous, headers[name]...)
	}
	return filtered
}

// claimSet describes the caller the way Argo's JWT claim set does, so
// expressions written for Argo such as metadata.claimSet.sub keep working.
func claimSet(caller model.Identity) map[string]any {
	groups := caller.Groups
	if groups == nil {
		groups = []string{}
	}
	claims := map[string]any{
		"sub":    caller.Subject,
		"groups": groups,
	}

	namespace, name, ok := serviceAccount(caller.Subject)
	if ok {
		claims["service_account_namespace"] = namespace
		claims["service_account_name"] = name
	}
	return claims
}

// serviceAccount splits a subject of the form
// system:serviceaccount:<namespace>:<name>.
func serviceAccount(subject string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(subject, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	namespace, name, found = strings.Cut(rest, ":")
	if !found || namespace == "" || name == "" {
		return "", "", false
	}
	return namespace, name, true
}

// jsonWhitespace is the whitespace JSON allows between tokens.
const jsonWhitespace = " \t\r\n"

// MaxJSONDepth bounds how deeply arrays and objects may nest in a body.
// Real webhook payloads nest about ten levels; a body nested thousands of
// levels deep only costs the decoder stack and time.
const MaxJSONDepth = 256

// DecodeJSON decodes a request body holding exactly one JSON value. An empty
// body is null. Integers that fit in int64 become int64, so large IDs keep
// every digit, and every other number becomes float64.
func DecodeJSON(body []byte) (any, error) {
	// Only the four JSON whitespace bytes count: other Unicode spaces are
	// invalid JSON, not an empty body.
	if len(bytes.Trim(body, jsonWhitespace)) == 0 {
		return nil, nil
	}

	if err := checkDepth(body); err != nil {
		return nil, err
	}

	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}

	// A second value, or any other bytes after the first, means the sender
	// did not send one JSON document.
	end := int(decoder.InputOffset())
	if trailing := bytes.TrimLeft(body[end:], jsonWhitespace); len(trailing) > 0 {
		return nil, fmt.Errorf("invalid JSON: unexpected data after the first value at byte %d", len(body)-len(trailing))
	}
	return convertNumbers(value)
}

// convertNumbers replaces every json.Number in v, in place.
func convertNumbers(v any) (any, error) {
	switch value := v.(type) {
	case json.Number:
		if i, err := value.Int64(); err == nil {
			return i, nil
		}
		f, err := value.Float64()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: number %q is out of range", value.String())
		}
		return f, nil
	case map[string]any:
		for key, element := range value {
			converted, err := convertNumbers(element)
			if err != nil {
				return nil, err
			}
			value[key] = converted
		}
	case []any:
		for i, element := range value {
			converted, err := convertNumbers(element)
			if err != nil {
				return nil, err
			}
			value[i] = converted
		}
	}
	return v, nil
}

// checkDepth rejects a body whose arrays and objects nest deeper than
// MaxJSONDepth, before the decoder builds anything. It skips the contents of
// strings, so brackets inside them do not count. Malformed JSON is left to
// the decoder to report.
func checkDepth(body []byte) error {
	depth := 0
	inString, escaped := false, false
	for i, b := range body {
		switch {
		case inString && escaped:
			escaped = false
		case inString && b == '\\':
			escaped = true
		case inString && b == '"':
			inString = false
		case inString:
		case b == '"':
			inString = true
		case b == '[' || b == '{':
			depth++
			if depth > MaxJSONDepth {
				return fmt.Errorf("invalid JSON: arrays and objects nest deeper than %d levels at byte %d", MaxJSONDepth, i)
			}
		case b == ']' || b == '}':
			depth--
		}
	}
	return nil
}
