package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// harJSONError is an error in the JSON of a HAR file. Its message names the
// HAR field and the JSON types, not Go types, and Unwrap returns the error
// of encoding/json.
type harJSONError struct {
	message string
	cause   error
}

func (e *harJSONError) Error() string { return e.message }

func (e *harJSONError) Unwrap() error { return e.cause }

// newHARJSONError wraps err, an error of json.Unmarshal of data into a
// value of type root, in an error whose message names the HAR field. path
// is the HAR field that data is, such as log.entries[3], or "" for the
// whole file.
func newHARJSONError(err error, data []byte, root reflect.Type, path string) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return &harJSONError{message: "invalid HAR: " + typeErrorMessage(typeErr, root, path), cause: err}
	case errors.As(err, &syntaxErr):
		line, column := textPosition(data, syntaxErr.Offset)
		message := fmt.Sprintf("invalid HAR: invalid JSON at line %d, column %d: %v", line, column, syntaxErr)
		return &harJSONError{message: message, cause: err}
	}
	return fmt.Errorf("invalid HAR: %w", err)
}

// typeErrorMessage describes e, a value of the wrong JSON type, as
// `"log.entries[0].request.headers" must be an array, found an object`.
// e.Field has the JSON names of the fields from root to the value, but no
// array indexes, so an item of an array is shown as name[].
func typeErrorMessage(e *json.UnmarshalTypeError, root reflect.Type, path string) string {
	declared := root
	if e.Field != "" {
		for name := range strings.SplitSeq(e.Field, ".") {
			declared = derefType(declared)
			if declared.Kind() == reflect.Slice {
				path += "[]"
				declared = derefType(declared.Elem())
			}
			field, found := fieldByJSONName(declared, name)
			if !found {
				// Unreachable while e comes from decoding into root.
				return fmt.Sprintf("%q must be %s, found %s", joinFieldPath(path, e.Field), jsonTypeName(e.Type), jsonValueName(e.Value))
			}
			declared = field.Type
			path = joinFieldPath(path, name)
		}
	}

	subject := strconv.Quote(path)
	if path == "" {
		subject = "the file"
	}
	// A type error inside an array is reported on the array's field, with
	// the type of one item.
	declared = derefType(declared)
	if declared.Kind() == reflect.Slice && derefType(declared.Elem()) == derefType(e.Type) {
		subject = "each item of " + subject
	}
	return fmt.Sprintf("%s must be %s, found %s", subject, jsonTypeName(e.Type), jsonValueName(e.Value))
}

func joinFieldPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldByJSONName returns the field of struct type t that encoding/json
// decodes the key name into. The HAR types tag every field.
func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		field := t.Field(i)
		tag, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if tag == name {
			return field, true
		}
	}
	return reflect.StructField{}, false
}

// jsonTypeName returns the JSON type that encoding/json decodes into t,
// with an article.
func jsonTypeName(t reflect.Type) string {
	t = derefType(t)
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "another JSON type"
}

// jsonValueName returns the JSON value that UnmarshalTypeError.Value
// describes, with an article: an object, an array, a string, a number, a
// boolean, or the number itself when it does not fit, such as 200.5 for an
// integer.
func jsonValueName(value string) string {
	switch value {
	case "object", "array":
		return "an " + value
	case "string", "number":
		return "a " + value
	case "bool":
		return "a boolean"
	}
	if number, found := strings.CutPrefix(value, "number "); found {
		return number
	}
	return value
}

// textPosition returns the 1-based line and column of the byte before
// offset in data, where encoding/json reports a syntax error.
func textPosition(data []byte, offset int64) (line, column int) {
	end := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:end]
	line = bytes.Count(before, []byte("\n")) + 1
	column = end - bytes.LastIndexByte(before, '\n')
	return line, column
}
