package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// eventFormat is the version of the encoding that [Event.MarshalBinary]
// writes. Change it, and keep reading the old version, whenever the
// encoding changes, because a durable queue contains events written by an
// earlier release.
const eventFormat = 1

// eventRecord is the encoded form of an Event. Its JSON names are fixed, so
// renaming a field of Event or Identity does not change the encoding.
type eventRecord struct {
	Format        int                 `json:"format"`
	ID            string              `json:"id"`
	Namespace     string              `json:"namespace"`
	Discriminator string              `json:"discriminator"`
	Payload       json.RawMessage     `json:"payload"`
	Headers       map[string][]string `json:"headers"`
	Caller        identityRecord      `json:"caller"`
	ReceivedAt    time.Time           `json:"receivedAt"`
}

type identityRecord struct {
	Subject           string   `json:"subject"`
	UID               string   `json:"uid"`
	Groups            []string `json:"groups"`
	Email             string   `json:"email"`
	PreferredUsername string   `json:"preferredUsername"`
	Namespaces        []string `json:"namespaces"`
	AllNamespaces     bool     `json:"allNamespaces"`
}

// MarshalBinary encodes the event as a versioned JSON document, for a
// durable queue. [Event.UnmarshalBinary] restores it with every payload value
// of the same type and value: an int64 stays an int64 and a float64 stays a
// float64, even when it has no fractional part. Nil and empty slices and maps
// stay apart. ReceivedAt keeps its instant to the nanosecond but not its
// monotonic clock reading.
//
// The payload may contain only the types that [Event] lists. Any other type,
// and a float64 that is NaN or infinite, is an error, because JSON cannot
// carry it back.
//
// NOTE: strings are stored as JSON strings, so invalid UTF-8 becomes U+FFFD
// as in encoding/json. Payload strings decoded from JSON are always valid,
// but a header value may carry other bytes.
func (e Event) MarshalBinary() ([]byte, error) {
	var payload bytes.Buffer
	if err := writePayload(&payload, e.Payload); err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}

	record := eventRecord{
		Format:        eventFormat,
		ID:            e.ID,
		Namespace:     e.Namespace,
		Discriminator: e.Discriminator,
		Payload:       payload.Bytes(),
		Headers:       e.Headers,
		Caller:        identityRecord(e.Caller),
		ReceivedAt:    e.ReceivedAt,
	}
	data, err := json.Marshal(record)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return data, nil
}

// UnmarshalBinary decodes an event that [Event.MarshalBinary] encoded. It
// rejects a format version it does not know, such as one written by a newer
// release.
func (e *Event) UnmarshalBinary(data []byte) error {
	var record eventRecord
	if err := json.Unmarshal(data, &record); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	if record.Format != eventFormat {
		return fmt.Errorf("decode event %s: unsupported format %d: this release reads format %d only", record.ID, record.Format, eventFormat)
	}
	payload, err := readPayload(record.Payload)
	if err != nil {
		return fmt.Errorf("decode event %s: %w", record.ID, err)
	}

	*e = Event{
		ID:            record.ID,
		Namespace:     record.Namespace,
		Discriminator: record.Discriminator,
		Payload:       payload,
		Headers:       record.Headers,
		Caller:        Identity(record.Caller),
		ReceivedAt:    record.ReceivedAt,
	}
	return nil
}

// writePayload writes v as JSON in which every float64 has a decimal point
// or an exponent, so readPayload can tell it from an int64.
func writePayload(buf *bytes.Buffer, v any) error {
	switch value := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(value))
	case int64:
		buf.WriteString(strconv.FormatInt(value, 10))
	case float64:
		return writeFloat(buf, value)
	case string:
		return writeJSON(buf, value)
	case []any:
		buf.WriteByte('[')
		for i, element := range value {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writePayload(buf, element); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		// Sorted keys make the encoding of equal payloads equal.
		keys := make([]string, 0, len(value))
		for key := range value {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, key := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, key); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writePayload(buf, value[key]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unsupported payload type %T: use nil, bool, int64, float64, string, []any or map[string]any", v)
	}
	return nil
}

func writeFloat(buf *bytes.Buffer, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("unsupported payload number %v: JSON has no NaN or infinity", f)
	}
	// The shortest form that parses back to the same float64.
	text := strconv.FormatFloat(f, 'g', -1, 64)
	buf.WriteString(text)
	if !strings.ContainsAny(text, ".e") {
		buf.WriteString(".0")
	}
	return nil
}

func writeJSON(buf *bytes.Buffer, s string) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	buf.Write(data)
	return nil
}

// readPayload decodes what writePayload wrote: a number with a decimal point
// or an exponent is a float64, and any other number an int64.
func readPayload(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errors.New("missing payload")
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, fmt.Errorf("invalid payload: %w", err)
	}
	return restoreNumbers(value)
}

// restoreNumbers replaces every json.Number in v, in place.
func restoreNumbers(v any) (any, error) {
	switch value := v.(type) {
	case json.Number:
		return parseNumber(value.String())
	case []any:
		for i, element := range value {
			restored, err := restoreNumbers(element)
			if err != nil {
				return nil, err
			}
			value[i] = restored
		}
	case map[string]any:
		for key, element := range value {
			restored, err := restoreNumbers(element)
			if err != nil {
				return nil, err
			}
			value[key] = restored
		}
	}
	return v, nil
}

func parseNumber(text string) (any, error) {
	if strings.ContainsAny(text, ".eE") {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid payload number %q: %w", text, err)
		}
		return f, nil
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid payload number %q: %w", text, err)
	}
	return i, nil
}
