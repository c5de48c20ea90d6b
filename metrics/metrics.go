// Package metrics defines the Prometheus metrics of wfevents. The other
// packages record through a *Metrics, whose methods do nothing on a nil
// receiver, so components built without metrics, as in most tests, need no
// stand-in.
//
// Label values are bounded: reasons and providers come from fixed lists, and
// the namespace label is empty unless Config.NamespaceLabel is set.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Reasons an event is rejected at admission.
const (
	RejectAuth         = "auth"          // 401 or 403
	RejectBadRequest   = "bad_request"   // 400, 404 or 405
	RejectTooLarge     = "too_large"     // 413
	RejectQueueFull    = "queue_full"    // 503, the pipeline is full
	RejectShuttingDown = "shutting_down" // 503, intake has stopped
	RejectUnavailable  = "unavailable"   // 503 for another cause, such as a slow authenticator
	RejectInternal     = "internal"      // 500
)

// Reasons a resource fails for an event.
const (
	DispatchExpression  = "expression"  // an expression failed or returned the wrong type
	DispatchForbidden   = "forbidden"   // the API server refused the caller
	DispatchNotFound    = "not_found"   // the referenced template does not exist
	DispatchInvalid     = "invalid"     // the API server rejected the Workflow
	DispatchUnavailable = "unavailable" // transient errors outlasted the retries
	DispatchInternal    = "internal"    // anything else
)

// Config configures New.
type Config struct {
	// NamespaceLabel puts the event's namespace in the namespace label of
	// the per-namespace counters. Off, the label is empty, which keeps the
	// number of series fixed however many namespaces send events.
	NamespaceLabel bool
}

// Metrics holds every collector. Its methods are safe for concurrent use and
// do nothing when the receiver is nil.
type Metrics struct {
	registry       *prometheus.Registry
	namespaceLabel bool

	received         prometheus.Counter
	accepted         *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	processed        *prometheus.CounterVec
	processingTime   prometheus.Histogram
	matches          *prometheus.CounterVec
	created          *prometheus.CounterVec
	dispatchErrors   *prometheus.CounterVec
	signatureFailure *prometheus.CounterVec
	panics           prometheus.Counter
}

// New returns Metrics registered on a registry of their own, together with
// Go runtime and process collectors.
func New(cfg Config) *Metrics {
	m := &Metrics{
		registry:       prometheus.NewRegistry(),
		namespaceLabel: cfg.NamespaceLabel,
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wfevents_events_received_total",
			Help: "Requests to the events endpoint.",
		}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_events_accepted_total",
			Help: "Events accepted at admission.",
		}, []string{"namespace"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_events_rejected_total",
			Help: "Requests to the events endpoint rejected at admission, by reason.",
		}, []string{"reason"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_events_processed_total",
			Help: "Events the workers finished.",
		}, []string{"namespace"}),
		processingTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wfevents_event_processing_seconds",
			Help:    "Time from the start of processing an event to its end: matching and creating its Workflows.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms to about 16 s
		}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_matches_total",
			Help: "Templates and bindings whose expression matched an event.",
		}, []string{"namespace"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_workflows_created_total",
			Help: "Workflows created.",
		}, []string{"namespace"}),
		dispatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_dispatch_errors_total",
			Help: "Templates and bindings that failed for an event, by reason.",
		}, []string{"reason"}),
		signatureFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wfevents_webhook_signature_failures_total",
			Help: "Webhook deliveries without an Authorization header whose signature did not verify, by the provider their headers name.",
		}, []string{"provider"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wfevents_worker_panics_total",
			Help: "Events whose processing panicked; the worker recovered and went on.",
		}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.received, m.accepted, m.rejected, m.processed, m.processingTime,
		m.matches, m.created, m.dispatchErrors, m.signatureFailure, m.panics,
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// GaugeFunc registers a gauge whose value value returns at each scrape, for
// state that another component owns, such as the pipeline depth.
func (m *Metrics) GaugeFunc(name, help string, value func() float64) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
}

// CounterFunc registers a counter whose value value returns at each scrape,
// with constant labels, for counts another component keeps.
func (m *Metrics) CounterFunc(name, help string, labels prometheus.Labels, value func() float64) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, value))
}

func (m *Metrics) namespace(namespace string) string {
	if m.namespaceLabel {
		return namespace
	}
	return ""
}

// EventReceived counts a request to the events endpoint.
func (m *Metrics) EventReceived() {
	if m != nil {
		m.received.Inc()
	}
}

// EventAccepted counts an event accepted for namespace.
func (m *Metrics) EventAccepted(namespace string) {
	if m != nil {
		m.accepted.WithLabelValues(m.namespace(namespace)).Inc()
	}
}

// EventRejected counts a rejection; reason is one of the Reject constants.
func (m *Metrics) EventRejected(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}

// EventProcessed counts a processed event and its processing time, matches
// and created Workflows.
func (m *Metrics) EventProcessed(namespace string, seconds float64, matches, created int) {
	if m == nil {
		return
	}
	label := m.namespace(namespace)
	m.processed.WithLabelValues(label).Inc()
	m.processingTime.Observe(seconds)
	m.matches.WithLabelValues(label).Add(float64(matches))
	m.created.WithLabelValues(label).Add(float64(created))
}

// DispatchFailed counts a resource that failed for an event; reason is one
// of the Dispatch constants.
func (m *Metrics) DispatchFailed(reason string) {
	if m != nil {
		m.dispatchErrors.WithLabelValues(reason).Inc()
	}
}

// SignatureFailed counts a webhook delivery that did not verify. provider is
// github, gitlab, bitbucket, bitbucketserver or none.
func (m *Metrics) SignatureFailed(provider string) {
	if m != nil {
		m.signatureFailure.WithLabelValues(provider).Inc()
	}
}

// WorkerPanicked counts an event whose processing panicked.
func (m *Metrics) WorkerPanicked() {
	if m != nil {
		m.panics.Inc()
	}
}
