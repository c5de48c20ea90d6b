package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/workers"
)

// benchmarkToken is the token the admission benchmarks send.
const benchmarkToken = "admin-token"

// benchmarkBody is a 1 KiB JSON event.
var benchmarkBody = func() []byte {
	const prefix, suffix = `{"message":"hello events","padding":"`, `"}`
	return []byte(prefix + strings.Repeat("x", 1024-len(prefix)-len(suffix)) + suffix)
}()

// newCachedReviewer returns the cluster mode's Reviewer on a fake API
// server that authenticates benchmarkToken as admin and allows everything,
// with both caches already filled.
func newCachedReviewer(b *testing.B) *kube.Reviewer {
	b.Helper()
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		review.Status = authenticationv1.TokenReviewStatus{
			Authenticated: review.Spec.Token == benchmarkToken,
			User:          authenticationv1.UserInfo{Username: "admin", Groups: []string{"system:masters"}},
		}
		return true, review, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		review.Status.Allowed = true
		return true, review, nil
	})

	reviewer := kube.NewReviewer(client, kube.ReviewConfig{CacheTTL: time.Hour})
	caller, err := reviewer.Authenticate(context.Background(), benchmarkToken)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reviewer.MayCreateWorkflows(context.Background(), caller, "argo"); err != nil {
		b.Fatal(err)
	}
	return reviewer
}

// fixtureTokens returns the embedded mode's token table.
func fixtureTokens(b *testing.B) *fixtures.Tokens {
	b.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	if err != nil {
		b.Fatal(err)
	}
	return seed.Tokens
}

// authorizingAuthenticator is both halves of access control, as the token
// table and the Reviewer are.
type authorizingAuthenticator interface {
	server.Authenticator
	model.Authorizer
}

// newAdmissionHandler returns the events handler as "wfevents serve" builds
// it, with metrics, in front of a pipeline whose workers discard each
// event. The pipeline is large enough that no benchmark fills it.
func newAdmissionHandler(b *testing.B, access authorizingAuthenticator) http.Handler {
	b.Helper()
	discard := workers.ProcessorFunc(func(context.Context, model.Event) {})
	pipeline, err := workers.NewPipeline(workers.Config{Size: 1 << 16}, discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	pipeline.Start(ctx)

	handler, err := server.New(server.Config{
		Authenticator: access,
		Authorizer:    access,
		Queue:         pipeline,
		Metrics:       metrics.New(metrics.Config{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	return handler
}

// noopHandler responds 200 with {} and does nothing else: the cost of HTTP
// alone, for comparison.
var noopHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}\n"))
})

// BenchmarkAdmission measures the events handler: authentication from a
// cache, a 1 KiB body read and decoded, and the enqueue, next to a handler
// that does nothing. "handler" calls ServeHTTP directly; "loopback" sends
// requests over 127.0.0.1 to an http.Server with the timeouts of "wfevents
// serve", from GOMAXPROCS client goroutines.
func BenchmarkAdmission(b *testing.B) {
	handlers := []struct {
		name    string
		handler func(b *testing.B) http.Handler
	}{
		{"noop", func(*testing.B) http.Handler { return noopHandler }},
		{"token-table", func(b *testing.B) http.Handler { return newAdmissionHandler(b, fixtureTokens(b)) }},
		{"review-cache", func(b *testing.B) http.Handler { return newAdmissionHandler(b, newCachedReviewer(b)) }},
	}
	for _, h := range handlers {
		b.Run("handler/"+h.name, func(b *testing.B) { benchmarkServeHTTP(b, h.handler(b)) })
	}
	for _, h := range handlers {
		b.Run("loopback/"+h.name, func(b *testing.B) { benchmarkLoopback(b, h.handler(b)) })
	}
}

// benchmarkServeHTTP sends one request at a time straight to handler.
func benchmarkServeHTTP(b *testing.B, handler http.Handler) {
	b.ReportAllocs()
	for b.Loop() {
		request := httptest.NewRequest(http.MethodPost, "/api/v1/events/argo", bytes.NewReader(benchmarkBody))
		request.Header.Set("Authorization", "Bearer "+benchmarkToken)
		request.Header.Set("X-Argo-E2E", "true")
		recorder := httptest.NewRecorder()
		handler.ServeHTTP(recorder, request)
		if recorder.Code != http.StatusOK {
			b.Fatalf("status %d, want 200: %s", recorder.Code, recorder.Body)
		}
	}
}

// benchmarkLoopback sends requests over loopback from parallel clients and
// reports requests per second.
func benchmarkLoopback(b *testing.B, handler http.Handler) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() { _ = srv.Serve(listener) }()
	b.Cleanup(func() { _ = srv.Close() })

	url := "http://" + listener.Addr().String() + "/api/v1/events/argo"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)

	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := post(client, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// post sends the benchmark event and reads the whole response.
func post(client *http.Client, url string) error {
	request, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchmarkBody))
	if err != nil {
		return err
	}
	request.Header.Set("Authorization", "Bearer "+benchmarkToken)
	request.Header.Set("X-Argo-E2E", "true")
	response, err := client.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	if _, err := io.Copy(io.Discard, response.Body); err != nil {
		return err
	}
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d from %s, want 200", response.StatusCode, url)
	}
	return nil
}
