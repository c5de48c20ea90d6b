package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wfevents/wfevents/app"
	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/metrics"
)

// scrape fetches /metrics and returns each sample's value keyed by the
// metric name and its labels, as name{label="value",...}.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()

	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	parser := expfmt.NewTextParser(prommodel.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)

	samples := make(map[string]float64)
	for name, family := range families {
		for _, metric := range family.GetMetric() {
			var labels []string
			for _, label := range metric.GetLabel() {
				labels = append(labels, label.GetName()+`="`+label.GetValue()+`"`)
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case metric.GetCounter() != nil:
				samples[key] = metric.GetCounter().GetValue()
			case metric.GetGauge() != nil:
				samples[key] = metric.GetGauge().GetValue()
			case metric.GetHistogram() != nil:
				samples[key+"_count"] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	return samples
}

func TestMetricsAfterScriptedEvents(t *testing.T) {
	a, srv := startApp(t, func(cfg *app.Config) { cfg.Metrics = metrics.New(metrics.Config{}) })
	admin := map[string]string{"Authorization": "Bearer admin-token", "X-Argo-E2E": "true"}

	// A template whose expression does not compile.
	broken := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "WorkflowTemplate",
		"metadata":   map[string]any{"name": "broken", "namespace": "argo", "uid": "uid-broken", "resourceVersion": "1"},
		"spec":       map[string]any{"event": map[string]any{"expression": "event.message =="}},
	}}
	_, err := a.Fake.Resource(kube.WorkflowTemplatesResource).Namespace("argo").Create(t.Context(), broken, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(a.Catalog.Failing()) == 1 }, 10*time.Second, 5*time.Millisecond)

	// Two accepted events, one of which matches the reference template.
	status, _ := postEvent(t, srv.URL+"/api/v1/events/argo", admin, strings.NewReader(`{"message": "hello events"}`))
	require.Equal(t, http.StatusOK, status)
	status, _ = postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{"Authorization": "Bearer admin-token"}, strings.NewReader(`{"message": "no header"}`))
	require.Equal(t, http.StatusOK, status)
	waitForIdle(t, a)

	// A 400 and two 401s.
	status, _ = postEvent(t, srv.URL+"/api/v1/events/argo", admin, strings.NewReader(`{`))
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{"Authorization": "Bearer nope"}, strings.NewReader(`{}`))
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = postEvent(t, srv.URL+"/api/v1/events/argo", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}, strings.NewReader(`{}`))
	require.Equal(t, http.StatusUnauthorized, status)

	// A 503 once intake has stopped.
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	_, err = a.Pipeline.Shutdown(ctx)
	require.NoError(t, err)
	status, _ = postEvent(t, srv.URL+"/api/v1/events/argo", admin, strings.NewReader(`{}`))
	require.Equal(t, http.StatusServiceUnavailable, status)

	samples := scrape(t, srv.URL)

	want := map[string]float64{
		`wfevents_events_received_total`:                               6,
		`wfevents_events_accepted_total{namespace=""}`:                 2,
		`wfevents_events_rejected_total{reason="bad_request"}`:         1,
		`wfevents_events_rejected_total{reason="auth"}`:                2,
		`wfevents_events_rejected_total{reason="shutting_down"}`:       1,
		`wfevents_events_processed_total{namespace=""}`:                2,
		`wfevents_event_processing_seconds_count`:                      2,
		`wfevents_matches_total{namespace=""}`:                         1,
		`wfevents_workflows_created_total{namespace=""}`:               1,
		`wfevents_webhook_signature_failures_total{provider="github"}`: 1,
		`wfevents_expressions_failing`:                                 1,
		`wfevents_pipeline_capacity`:                                   64,
		`wfevents_pipeline_depth`:                                      0,
	}
	for key, value := range want {
		got, ok := samples[key]
		if assert.True(t, ok, "missing sample %s", key) {
			assert.Equal(t, value, got, key)
		}
	}
	for key := range samples {
		assert.NotContains(t, key, "event-", "an event ID became a label value: %s", key)
	}
}

func TestDryRunCreatesNothing(t *testing.T) {
	a, srv := startApp(t)

	status, body := postEvent(t, srv.URL+"/api/v1/events/argo?dryRun=All", map[string]string{
		"Authorization": "Bearer admin-token",
		"X-Argo-E2E":    "true",
	}, strings.NewReader(`{"message": "hello events"}`))

	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, true, body["dryRun"])
	resources, _ := body["resources"].([]any)
	byName := make(map[string]map[string]any)
	for _, resource := range resources {
		result := resource.(map[string]any)
		byName[result["name"].(string)] = result
	}
	require.Contains(t, byName, "event-consumer")
	consumer := byName["event-consumer"]
	assert.Equal(t, "WorkflowTemplate", consumer["kind"])
	assert.Equal(t, true, consumer["matched"])
	workflow, err := json.Marshal(consumer["workflow"])
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind": "Workflow",
		"metadata": {
			"name": "event-consumer-ebnagy4mc3",
			"namespace": "argo",
			"labels": {
				"wfevents.dev/event-id": "event-1",
				"workflows.argoproj.io/creator": "admin",
				"workflows.argoproj.io/workflow-template": "event-consumer"
			}
		},
		"spec": {
			"arguments": {"parameters": [{"name": "message", "value": "hello events"}]},
			"workflowTemplateRef": {"name": "event-consumer"}
		}
	}`, string(workflow))
	assert.Equal(t, false, byName["github-push"]["matched"])
	assert.NotContains(t, byName["github-push"], "workflow")

	waitForIdle(t, a)
	assert.Empty(t, createdWorkflows(a), "a dry run creates nothing")
}

func TestDryRunShowsCompileErrors(t *testing.T) {
	a, srv := startApp(t)
	broken := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "WorkflowTemplate",
		"metadata":   map[string]any{"name": "broken", "namespace": "argo", "uid": "uid-broken", "resourceVersion": "1"},
		"spec":       map[string]any{"event": map[string]any{"expression": "event.message =="}},
	}}
	_, err := a.Fake.Resource(kube.WorkflowTemplatesResource).Namespace("argo").Create(t.Context(), broken, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(a.Catalog.Failing()) == 1 }, 10*time.Second, 5*time.Millisecond)

	resp, err := http.Post(srv.URL+"/api/v1/events/argo?dryRun=All", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a dry run needs the same credentials")

	status, body := postEvent(t, srv.URL+"/api/v1/events/argo?dryRun=All", map[string]string{"Authorization": "Bearer admin-token"}, strings.NewReader(`{}`))
	require.Equal(t, http.StatusOK, status, body)
	var brokenResult map[string]any
	for _, resource := range body["resources"].([]any) {
		if result := resource.(map[string]any); result["name"] == "broken" {
			brokenResult = result
		}
	}
	require.NotNil(t, brokenResult, "compile failures in scope are listed")
	assert.Contains(t, brokenResult["error"], "compile spec.event.expression")
	assert.Contains(t, brokenResult["error"], "(1:16)")

	status, body = postEvent(t, srv.URL+"/api/v1/events/argo?dryRun=true", map[string]string{"Authorization": "Bearer admin-token"}, strings.NewReader(`{}`))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body["message"], `invalid dryRun "true"`)
}
