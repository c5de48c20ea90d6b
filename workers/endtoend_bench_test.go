package workers_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/metrics"
)

// endToEndBody is the reference event, which creates one Workflow from the
// template event-consumer.
var endToEndBody = []byte(`{"message": "hello events"}`)

// startEmbedded starts wfevents on the embedded cluster as "wfevents serve"
// does, with metrics, and returns it with a channel that receives a value
// for each Workflow create the fake API server is sent, while it has room.
func startEmbedded(b *testing.B) (*app.App, <-chan struct{}) {
	b.Helper()
	seed, err := fixtures.Load(fixtures.Embedded())
	if err != nil {
		b.Fatal(err)
	}
	running, err := app.NewEmbedded(app.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: metrics.New(metrics.Config{}),
	}, seed)
	if err != nil {
		b.Fatal(err)
	}

	// The reactor runs with the fake's lock held, so it must not wait. A
	// value is dropped when the channel is full.
	creates := make(chan struct{}, 1024)
	running.Fake.PrependReactor("create", "workflows", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		select {
		case creates <- struct{}{}:
		default:
		}
		return false, nil, nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !running.Start(ctx) {
		b.Fatal("template caches did not sync")
	}
	b.Cleanup(running.Stop)
	return running, creates
}

// postEvent sends the reference event to handler and returns the status.
func postEvent(handler http.Handler) int {
	request := httptest.NewRequest(http.MethodPost, "/api/v1/events/argo", bytes.NewReader(endToEndBody))
	request.Header.Set("Authorization", "Bearer admin-token")
	request.Header.Set("X-Argo-E2E", "true")
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)
	return recorder.Code
}

// waitIdle waits until the pipeline holds no event, polling.
func waitIdle(b *testing.B, running *app.App) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for running.Pipeline.Depth() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("pipeline still holds %d events after 10s", running.Pipeline.Depth())
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// clearEvery is how many events pass between two clearings of the fake's
// record of API calls, which would otherwise grow with every event.
const clearEvery = 1024

// BenchmarkEndToEnd sends the reference event through the handler, the
// pipeline, matching and the Workflow create of the embedded cluster's fake
// API server. "serial" sends the next event once the last one's Workflow
// create was sent, so ns/op is the latency of one event. "batches" fills
// the pipeline of 64 events and waits for it to empty, again and again, so
// ns/op is the time per event with the default 4 workers kept busy, and no
// event gets 503. The events go to the handler directly, not over a
// network.
//
// NOTE: every event here is held in memory. No benchmark covers the
// durable queue of app.Config.EventQueueDir yet.
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		running, creates := startEmbedded(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if status := postEvent(running.Handler); status != http.StatusOK {
				b.Fatalf("status %d, want 200", status)
			}
			<-creates
			if i%clearEvery == 0 {
				running.Fake.ClearActions()
			}
		}
	})

	b.Run("batches", func(b *testing.B) {
		running, _ := startEmbedded(b)
		size := running.Pipeline.Capacity()
		b.ReportAllocs()
		for i := 1; b.Loop(); i++ {
			if status := postEvent(running.Handler); status != http.StatusOK {
				b.Fatalf("status %d, want 200", status)
			}
			if i%size == 0 {
				waitIdle(b, running)
				running.Fake.ClearActions()
			}
		}
		waitIdle(b, running)
	})
}
