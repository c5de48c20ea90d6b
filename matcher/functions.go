package matcher

import (
	"fmt"

	"github.com/Masterminds/sprig/v3"
	"github.com/theory/jsonpath"
)

// sprigFunctions are Sprig v3's generic functions, which expressions call as
// sprig.<name>, as in Argo. env and expandenv are replaced by functions that
// return an error, because they would expose the server's environment
// variables to every template author. The map is built once and only read.
var sprigFunctions = func() map[string]any {
	functions := make(map[string]any)
	for name, function := range sprig.GenericFuncMap() {
		functions[name] = function
	}
	for _, name := range []string{"env", "expandenv"} {
		functions[name] = func(...any) (any, error) {
			return nil, fmt.Errorf("sprig.%s is not available: it would expose the server's environment variables", name)
		}
	}
	return functions
}()

// toJSON returns v as compact JSON, for the toJson function of expressions.
// Unlike encoding/json's default, it keeps <, > and & as they are.
func toJSON(v any) (string, error) {
	encoded, err := encodeJSON(v)
	if err != nil {
		return "", fmt.Errorf("toJson: %w", err)
	}
	return encoded, nil
}

// jsonPath evaluates an RFC 9535 JSONPath query, such as $.a.b[0], over a
// JSON document given as a string, for the jsonpath function of expressions.
// A query that names one node returns its value, or nil when it selects
// nothing. Any other query returns the list of selected values.
func jsonPath(document string, query string) (any, error) {
	path, err := jsonpath.Parse(query)
	if err != nil {
		return nil, fmt.Errorf("jsonpath: invalid query %q: %w", query, err)
	}
	value, err := DecodeJSON([]byte(document))
	if err != nil {
		return nil, fmt.Errorf("jsonpath: first argument is not a JSON document: %w", err)
	}

	nodes := path.Select(value)
	if path.Query().Singular() == nil {
		return []any(nodes), nil
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	return nodes[0], nil
}
