package sim

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestStreamKeepsBodiesExactly(t *testing.T) {
	bodies := map[string]string{
		"compact JSON":   `{"message":"hello events"}`,
		"indented JSON":  "{\n  \"ref\": \"refs/heads/main\"\n}\n",
		"form encoded":   "payload=%7B%7D",
		"binary":         "\xff\x00\xfe",
		"HTML in string": `{"a":"<b>"}`,
		"empty":          "",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			in := Request{
				Time:    time.Date(2026, 12, 4, 10, 0, 0, 123, time.UTC),
				Method:  http.MethodPost,
				Path:    "/api/v1/events/argo",
				Headers: http.Header{"X-Github-Event": {"push"}},
				Body:    []byte(body),
			}
			var buf bytes.Buffer
			require.NoError(t, WriteStream(&buf, []Request{in}))
			assert.Equal(t, 1, strings.Count(buf.String(), "\n"), "one request per line")

			out, err := ReadStream(&buf)
			require.NoError(t, err)
			require.Len(t, out, 1)
			assert.Equal(t, []byte(body), append([]byte{}, out[0].Body...))
			assert.True(t, in.Time.Equal(out[0].Time))
			assert.Equal(t, in.Headers, out[0].Headers)
		})
	}
}

func TestStreamBodyFieldChosen(t *testing.T) {
	line := func(body string) string {
		var buf bytes.Buffer
		require.NoError(t, WriteStream(&buf, []Request{{Method: "POST", Path: "/", Body: []byte(body)}}))
		return buf.String()
	}
	assert.Contains(t, line(`{"a":1}`), `"body":{"a":1}`)
	assert.Contains(t, line("{\n\"a\": 1}"), `"bodyText":"{\n\"a\": 1}"`)
	assert.Contains(t, line("\xff"), `"bodyBase64":"/w=="`)
}

func TestStreamBodyIncomplete(t *testing.T) {
	for _, incomplete := range []bool{true, false} {
		t.Run(strconv.FormatBool(incomplete), func(t *testing.T) {
			in := Request{Method: "POST", Path: "/api/v1/events/argo", Body: []byte(`{"a"`), BodyIncomplete: incomplete}
			var buf bytes.Buffer
			require.NoError(t, WriteStream(&buf, []Request{in}))
			if incomplete {
				assert.Contains(t, buf.String(), `"bodyIncomplete":true`)
			} else {
				assert.NotContains(t, buf.String(), "bodyIncomplete", "false is omitted")
			}

			out, err := ReadStream(&buf)
			require.NoError(t, err)
			require.Len(t, out, 1)
			assert.Equal(t, incomplete, out[0].BodyIncomplete)
			assert.Equal(t, in.Body, out[0].Body)
		})
	}
}

func TestReadStreamErrorsNameLine(t *testing.T) {
	cases := map[string]string{
		"not JSON":         "{\"method\":\"POST\",\"path\":\"/\"}\nnot json\n",
		"two bodies":       "\n{\"method\":\"POST\",\"path\":\"/\",\"body\":{},\"bodyText\":\"x\"}\n",
		"missing method":   "{\"path\":\"/\"}\n{\"method\":\"POST\",\"path\":\"/\"}\n",
		"relative path":    "{\"method\":\"POST\",\"path\":\"/\"}\n{\"method\":\"POST\",\"path\":\"api\"}\n",
		"invalid base64":   "{\"method\":\"POST\",\"path\":\"/\"}\n{\"method\":\"POST\",\"path\":\"/\",\"bodyBase64\":\"!\"}\n",
		"misspelled field": "{\"method\":\"POST\",\"path\":\"/\",\"expect\":{\"stauts\":201}}\n",
		"header string":    "{\"method\":\"POST\",\"path\":\"/\",\"headers\":{\"X-A\":\"b\"}}\n",
		"invalid time":     "{\"method\":\"POST\",\"path\":\"/\",\"time\":\"yesterday\"}\n",
	}
	want := map[string]string{
		"not JSON":         "line 2:",
		"two bodies":       "line 2: more than one of body",
		"missing method":   `line 1: missing "method"`,
		"relative path":    `line 2: invalid "path" "api"`,
		"invalid base64":   "line 2: invalid bodyBase64",
		"misspelled field": `line 1: unknown field "stauts"`,
		"header string":    `line 1: invalid "headers": found a string where the format has an array`,
		"invalid time":     `line 1: invalid "time" "yesterday": write the receive time in RFC 3339`,
	}
	for name, stream := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ReadStream(strings.NewReader(stream))
			require.Error(t, err)
			assert.Contains(t, err.Error(), want[name])
		})
	}
}

func TestStreamRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := rapid.SliceOf(rapid.Byte()).Draw(t, "body")
		header := rapid.StringMatching(`[ -~]{0,20}`).Draw(t, "header")
		incomplete := rapid.Bool().Draw(t, "incomplete")
		in := Request{Method: "POST", Path: "/api/v1/events/ns", Headers: http.Header{"X-Value": {header}}, Body: body, BodyIncomplete: incomplete}

		var buf bytes.Buffer
		if err := WriteStream(&buf, []Request{in}); err != nil {
			t.Fatal(err)
		}
		out, err := ReadStream(&buf)
		if err != nil {
			t.Fatalf("read back %q: %v", buf.String(), err)
		}
		if !bytes.Equal(out[0].Body, body) {
			t.Fatalf("body %q read back as %q from %s", body, out[0].Body, buf.String())
		}
		if out[0].BodyIncomplete != incomplete {
			t.Fatalf("bodyIncomplete %t read back as %t from %s", incomplete, out[0].BodyIncomplete, buf.String())
		}
		if out[0].Headers.Get("X-Value") != header {
			t.Fatalf("header %q read back as %q", header, out[0].Headers.Get("X-Value"))
		}
	})
}
