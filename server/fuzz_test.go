package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
)

// staticAuth accepts one token, for the fuzz test, which cannot use mocks
// with expectations.
type staticAuth struct{}

func (staticAuth) Authenticate(_ context.Context, token model.Token) (model.Identity, error) {
	if token != "fuzz-token" {
		return model.Identity{}, model.Errorf(model.CodeUnauthenticated, "token is not valid")
	}
	return model.Identity{Subject: "fuzzer", Namespaces: []string{"argo"}}, nil
}

// acceptAll is a queue that takes every event.
type acceptAll struct{}

func (acceptAll) Enqueue(model.Event) error { return nil }

// FuzzEventHandler sends arbitrary paths, headers and bodies to the events
// endpoint and checks that the handler never panics, always responds with
// a known status, and sends every error as the JSON error shape without the
// token.
func FuzzEventHandler(f *testing.F) {
	f.Add("/api/v1/events/argo", "Bearer fuzz-token", "X-Argo-E2E", "true", []byte(`{"message":"hello"}`))
	f.Add("/api/v1/events/", "Bearer fuzz-token", "X-Hub-Signature-256", "sha256=00", []byte(`[]`))
	f.Add("/api/v1/events//d", "", "X-Gitlab-Token", "x", []byte(`{`))
	f.Add("/api/v1/events/argo/a%2Fb", "Basic eA==", "Idempotency-Key", "k", []byte("\xff"))
	f.Add("/api/v1/events/Bad_NS?dryRun=true", "Bearer fuzz-token", "X-GitHub-Delivery", "not a uuid", []byte(strings.Repeat("[", 300)))
	f.Fuzz(func(t *testing.T, path, authorization, headerName, headerValue string, body []byte) {
		if !strings.HasPrefix(path, "/api/v1/events/") {
			path = "/api/v1/events/" + path
		}
		req, err := http.NewRequest(http.MethodPost, "http://wfevents.invalid"+path, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		req.Header.Set("Authorization", authorization)
		if http.CanonicalHeaderKey(headerName) != "" && validHeader(headerName, headerValue) {
			req.Header.Set(headerName, headerValue)
		}
		handler, err := server.New(server.Config{Authenticator: staticAuth{}, Queue: acceptAll{}, MaxBodyBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}

		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK:
			return
		case 400, 401, 403, 404, 405, 413, 501, 503:
		default:
			t.Fatalf("POST %q answered %d: %s", path, rec.Code, rec.Body)
		}
		var reply server.ErrorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil || reply.Code == 0 || reply.Message == "" {
			t.Fatalf("POST %q answered %d without the error shape: %q", path, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "fuzz-token") {
			t.Fatalf("the response repeats the token: %s", rec.Body)
		}
	})
}

// validHeader reports whether net/http would send the header, so the fuzz
// test does not build requests no client can make.
func validHeader(name, value string) bool {
	if name == "" || strings.ContainsAny(name, " :\r\n\t") || strings.ContainsAny(value, "\r\n\x00") {
		return false
	}
	for _, r := range name {
		if r > 126 || r < 33 {
			return false
		}
	}
	return true
}
