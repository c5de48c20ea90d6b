package matcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EncodeParameter formats an expression result as a Workflow parameter value.
//
// Strings are used as they are, with no JSON quotes or escapes. Integers are
// exact. Floats use the shortest form that reads back to the same value,
// without an exponent unless the number is very large or very small. Bools are
// "true" or "false". Maps and slices are compact JSON without HTML escaping. A
// nil value is the empty string; callers apply a parameter's default first.
func EncodeParameter(v any) (string, error) {
	switch value := v.(type) {
	case nil:
		return "", nil
	case string:
		return value, nil
	case bool:
		return strconv.FormatBool(value), nil
	case int:
		return strconv.Itoa(value), nil
	case int64:
		return strconv.FormatInt(value, 10), nil
	case float64:
		return formatFloat(value)
	case time.Time:
		return value.Format(time.RFC3339Nano), nil
	case time.Duration:
		return value.String(), nil
	}

	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(reflect.ValueOf(v).Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(reflect.ValueOf(v).Uint(), 10), nil
	case reflect.Float32:
		return formatFloat(reflect.ValueOf(v).Float())
	}
	return encodeJSON(v)
}

// formatFloat writes f without an exponent between 1e-6 and 1e21, the range
// where JavaScript and most JSON tools also avoid one.
func formatFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("encode parameter: %v is not a finite number", f)
	}
	magnitude := math.Abs(f)
	if magnitude == 0 {
		return "0", nil // also for -0, which reads as a plain 0 everywhere
	}
	if magnitude >= 1e-6 && magnitude < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}

	// Write the exponent as encoding/json does inside objects, 1e-7 rather
	// than 1e-07, so a value reads the same alone and nested.
	formatted := strconv.FormatFloat(f, 'e', -1, 64)
	mantissa, exponent, _ := strings.Cut(formatted, "e")
	sign, digits := exponent[:1], strings.TrimLeft(exponent[1:], "0")
	return mantissa + "e" + sign + digits, nil
}

func encodeJSON(v any) (string, error) {
	var buffer bytes.Buffer
	encoder := json.NewEncoder(&buffer)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(v); err != nil {
		return "", fmt.Errorf("encode parameter: value of type %T cannot be written as JSON: %w", v, err)
	}
	return string(bytes.TrimSuffix(buffer.Bytes(), []byte("\n"))), nil
}
