package conformance

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckErrorBody(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	cases := []struct {
		name        string
		status      int
		header      http.Header
		body        string
		wantProblem string
	}{
		{name: "valid", status: 400, header: jsonHeader, body: `{"code": 3, "message": "invalid JSON"}`},
		{name: "status without a known code", status: 418, header: jsonHeader, body: `{"code": 2, "message": "teapot"}`},
		{name: "not JSON", status: 400, header: http.Header{"Content-Type": {"text/plain"}}, body: `{"code": 3, "message": "x"}`, wantProblem: "Content-Type application/json"},
		{name: "code of another status", status: 401, header: jsonHeader, body: `{"code": 7, "message": "denied"}`, wantProblem: "code 16 with status 401, not 7"},
		{name: "code as a string", status: 400, header: jsonHeader, body: `{"code": "3", "message": "x"}`, wantProblem: `an integer code, not "3"`},
		{name: "code not an integer", status: 400, header: jsonHeader, body: `{"code": 3.5, "message": "x"}`, wantProblem: "an integer code, not 3.5"},
		{name: "no code", status: 400, header: jsonHeader, body: `{"message": "x"}`, wantProblem: "an integer code, not null"},
		{name: "empty message", status: 400, header: jsonHeader, body: `{"code": 3, "message": " "}`, wantProblem: "a non-empty message"},
		{name: "no message", status: 400, header: jsonHeader, body: `{"code": 3}`, wantProblem: "a non-empty message"},
		{name: "empty body", status: 503, header: jsonHeader, body: ``, wantProblem: "a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problem := checkErrorBody(&response{status: tc.status, header: tc.header, body: []byte(tc.body)})
			if tc.wantProblem == "" {
				assert.Empty(t, problem)
				return
			}
			assert.Contains(t, problem, tc.wantProblem)
		})
	}
}

func TestDescribeRequest(t *testing.T) {
	cases := []struct {
		name string
		req  request
		want string
	}{
		{name: "with token", req: request{method: "POST", path: "/api/v1/events/argo", body: []byte(`{}`), token: "t"},
			want: "POST /api/v1/events/argo {}"},
		{name: "empty body without token", req: request{method: "POST", path: "/api/v1/events/"},
			want: "POST /api/v1/events/ with an empty body without a token"},
		{name: "large body", req: request{method: "POST", path: "/p", body: make([]byte, maxShown+1), token: "t"},
			want: "POST /p with a body of 161 bytes"},
		{name: "headers by name", req: request{method: "GET", path: "/p", token: "t", header: http.Header{"X-B": {"secret"}, "X-A": {"1"}}},
			want: "GET /p with an empty body and headers X-A, X-B"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, describe(tc.req))
		})
	}
}
