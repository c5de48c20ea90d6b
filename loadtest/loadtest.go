package loadtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/wfevents/wfevents/workers"
)

// Scenario names for Options.Scenario.
const (
	ScenarioLimit    = "limit"
	ScenarioCapacity = "capacity"
	ScenarioRate     = "rate"
)

// Defaults for the zero values of Options.
const (
	DefaultNamespace    = "argo"
	DefaultToken        = "admin-token"
	DefaultBodyBytes    = 1024
	DefaultRate         = 100
	DefaultTimeout      = 10 * time.Second
	DefaultStartRate    = 100
	DefaultRateFactor   = 2.0
	DefaultStepDuration = 2 * time.Second
	DefaultRefineSteps  = 3
	DefaultMaxP99       = 5 * time.Millisecond

	// DefaultRequests is the request bound of the rate and capacity
	// scenarios. The limit scenario sends four times the pipeline size.
	DefaultRequests = 100_000
)

// DefaultDuration returns the time bound of scenario when Options.Duration
// is zero.
func DefaultDuration(scenario string) time.Duration {
	if scenario == ScenarioCapacity {
		return time.Minute
	}
	return 10 * time.Second
}

// MaxUnavailable is the largest fraction of 503 responses that a capacity
// step may have and still count as sustained.
const MaxUnavailable = 0.001

// drainTimeout bounds the wait for the pipeline to empty after the limit
// scenario releases the workers, and before each capacity step.
const drainTimeout = 10 * time.Second

// Options configures a run. Zero values mean the defaults named on each field.
type Options struct {
	// Scenario is ScenarioLimit, ScenarioCapacity or ScenarioRate.
	Scenario string

	// URL is the base URL of a running server, such as
	// http://127.0.0.1:2746. Empty starts an in-process server configured
	// by Server on 127.0.0.1.
	URL    string
	Server ServerConfig

	// Namespace is the namespace in the events path. Empty means
	// DefaultNamespace; use ClusterScoped for the empty namespace.
	Namespace     string
	ClusterScoped bool

	// Token is the bearer token. Empty means DefaultToken, the built-in
	// fixtures' cluster-scoped token.
	Token string

	// Headers are sent with every event. Nil means X-Argo-E2E: true, which
	// with the default token, namespace and body matches the built-in
	// template event-consumer, so each event creates one Workflow.
	Headers http.Header

	// BodyBytes is the size of the JSON body. Zero means DefaultBodyBytes.
	BodyBytes int

	// Duration bounds the time spent sending. Zero means
	// DefaultDuration(Scenario). Responses in flight may take up to Timeout
	// longer, and the limit scenario then waits for the pipeline to drain.
	Duration time.Duration

	// MaxRequests bounds the requests sent. Zero means DefaultRequests,
	// or four times the pipeline size for the limit scenario, which sends
	// exactly MaxRequests.
	MaxRequests int

	// Rate is the requests sent per second by the limit and rate
	// scenarios. Zero means DefaultRate.
	Rate int

	// Unpaced sends as fast as MaxWorkers attack workers can, in place of
	// Rate. It needs MaxWorkers.
	Unpaced bool

	// MaxWorkers bounds vegeta's attack workers, which is the number of
	// requests in flight at once. Zero leaves vegeta to add workers as the
	// rate needs.
	MaxWorkers int

	// Timeout bounds each request. Zero means DefaultTimeout.
	Timeout time.Duration

	// StartRate, RateFactor, StepDuration, RefineSteps and MaxP99 set the
	// capacity search: the rate starts at StartRate and is multiplied by
	// RateFactor after each sustained step of StepDuration, until a step is
	// not sustained. RefineSteps more steps then halve the interval between
	// the highest sustained rate and the lowest failed one; negative means
	// none. A step is sustained when under MaxUnavailable of its responses
	// are 503, every other response is 200, its p99 is at most MaxP99 and
	// the rate was reached.
	StartRate    int
	RateFactor   float64
	StepDuration time.Duration
	RefineSteps  int
	MaxP99       time.Duration

	// Observe, when set, is called with every result, from one goroutine.
	Observe func(*vegeta.Result)

	// BeforeClose, when set, is called after the scenario and before the
	// in-process server stops, such as to write a heap profile of what the
	// run left in the server.
	BeforeClose func()
}

// withDefaults returns o with its zero values replaced by the defaults, or
// an error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	switch o.Scenario {
	case ScenarioLimit, ScenarioCapacity, ScenarioRate:
	default:
		return o, fmt.Errorf("invalid scenario %q: use %s, %s or %s", o.Scenario, ScenarioLimit, ScenarioCapacity, ScenarioRate)
	}
	if err := o.validateNumbers(); err != nil {
		return o, err
	}
	if o.URL != "" {
		if err := validateURL(o.URL); err != nil {
			return o, err
		}
	}

	o.Namespace = cmp.Or(o.Namespace, DefaultNamespace)
	if o.ClusterScoped {
		o.Namespace = ""
	}
	o.Token = cmp.Or(o.Token, DefaultToken)
	if o.Headers == nil {
		o.Headers = http.Header{}
		o.Headers.Set("X-Argo-E2E", "true")
	}
	o.BodyBytes = cmp.Or(o.BodyBytes, DefaultBodyBytes)
	o.Duration = cmp.Or(o.Duration, DefaultDuration(o.Scenario))
	o.Rate = cmp.Or(o.Rate, DefaultRate)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.StartRate = cmp.Or(o.StartRate, DefaultStartRate)
	o.RateFactor = cmp.Or(o.RateFactor, DefaultRateFactor)
	o.StepDuration = cmp.Or(o.StepDuration, DefaultStepDuration)
	o.RefineSteps = cmp.Or(o.RefineSteps, DefaultRefineSteps)
	o.MaxP99 = cmp.Or(o.MaxP99, DefaultMaxP99)
	o.Server.Handler = cmp.Or(o.Server.Handler, HandlerAdmission)

	pipelineSize := cmp.Or(o.Server.PipelineSize, workers.DefaultSize)
	if o.Scenario == ScenarioLimit {
		o.MaxRequests = cmp.Or(o.MaxRequests, 4*pipelineSize)
	}
	o.MaxRequests = cmp.Or(o.MaxRequests, DefaultRequests)

	switch {
	case o.Unpaced && o.MaxWorkers == 0:
		return o, errors.New("invalid rate 0 without max workers: an unpaced attack needs a bound on the requests in flight")
	case o.Scenario == ScenarioLimit && o.URL == "" && o.MaxRequests <= pipelineSize:
		return o, fmt.Errorf("invalid max requests %d for the limit scenario: send more than the pipeline size %d", o.MaxRequests, pipelineSize)
	case o.Scenario == ScenarioLimit && o.Server.DiscardWorkflows:
		return o, errors.New("invalid --api-discard-workflows for the limit scenario: it counts the Workflows the embedded cluster keeps, to check that each accepted event was processed once")
	case o.Scenario == ScenarioLimit && o.Server.Handler != HandlerAdmission:
		return o, fmt.Errorf("invalid handler %q for the limit scenario: it measures the pipeline, which only the %s handler has", o.Server.Handler, HandlerAdmission)
	case o.RateFactor <= 1:
		return o, fmt.Errorf("invalid rate factor %g: must be above 1, so that each capacity step is faster", o.RateFactor)
	}
	return o, nil
}

// validateNumbers rejects negative counts and durations.
func (o Options) validateNumbers() error {
	for name, negative := range map[string]bool{
		"body bytes":    o.BodyBytes < 0,
		"duration":      o.Duration < 0,
		"max requests":  o.MaxRequests < 0,
		"rate":          o.Rate < 0,
		"max workers":   o.MaxWorkers < 0,
		"timeout":       o.Timeout < 0,
		"start rate":    o.StartRate < 0,
		"step duration": o.StepDuration < 0,
		"max p99":       o.MaxP99 < 0,
		"pipeline size": o.Server.PipelineSize < 0,
		"worker count":  o.Server.WorkerCount < 0,
		"API latency":   o.Server.APILatency < 0,
		"rate factor":   o.RateFactor < 0,
	} {
		if negative {
			return fmt.Errorf("invalid %s: must not be negative", name)
		}
	}
	return nil
}

// validateURL accepts an http or https URL with a host and no path beyond
// "/", because the events path is added to it.
func validateURL(raw string) error {
	parsed, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	if (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return fmt.Errorf("invalid URL %q: use the server's base URL, such as http://127.0.0.1:2746", raw)
	}
	if strings.Trim(parsed.Path, "/") != "" {
		return fmt.Errorf("invalid URL %q: give the server's base URL without a path; the events path comes from the namespace", raw)
	}
	return nil
}

// Run runs the scenario and returns its report. It returns an error when
// the run could not take place, such as an invalid option or a server that
// did not start. A scenario whose checks fail still returns its report and
// no error; see Report.Failed.
func Run(ctx context.Context, opts Options) (report *Report, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	report = &Report{Scenario: opts.Scenario, Machine: currentMachine(), Started: time.Now()}
	defer func() { report.Machine.LoadAtEnd = loadAverage() }()

	// The limit scenario must hold the server's workers, which only the
	// in-process server allows.
	if opts.Scenario == ScenarioLimit && opts.URL != "" {
		report.URL = eventsURL(opts.URL, opts.Namespace)
		report.Skipped = "the limit scenario needs the in-process server, because it holds the server's workers to fill the pipeline; run it without --url"
		return report, nil
	}

	// Start the in-process server unless there is a URL to target.
	r := &runner{opts: opts, report: report, transport: newTransport()}
	defer r.transport.CloseIdleConnections()
	base := opts.URL
	if base == "" {
		r.server, err = StartServer(ctx, opts.Server)
		if err != nil {
			return nil, err
		}
		defer func() {
			r.transport.CloseIdleConnections()
			err = errors.Join(err, r.server.Close())
		}()
		base = r.server.URL
		report.Server = &ServerReport{Handler: opts.Server.Handler}
		if r.server.HasPipeline() {
			report.Server.PipelineSize = r.server.Capacity()
			report.Server.WorkerCount = cmp.Or(opts.Server.WorkerCount, workers.DefaultWorkers)
			report.Server.APILatency = milliseconds(opts.Server.APILatency)
			report.Server.DiscardWorkflows = opts.Server.DiscardWorkflows
		}
	}
	report.URL = eventsURL(base, opts.Namespace)
	r.target = newEventTarget(report.URL, opts.Token, opts.Headers, opts.BodyBytes)

	switch opts.Scenario {
	case ScenarioLimit:
		r.limit(ctx)
	case ScenarioCapacity:
		r.capacity(ctx)
	case ScenarioRate:
		r.rate(ctx)
	}
	if opts.BeforeClose != nil {
		opts.BeforeClose()
	}
	return report, err
}

// eventsURL returns the events URL of namespace on the server at base.
func eventsURL(base, namespace string) string {
	return strings.TrimSuffix(base, "/") + "/api/v1/events/" + url.PathEscape(namespace)
}

// runner carries one run's state through its scenario.
type runner struct {
	opts      Options
	report    *Report
	server    *Server // nil against a URL
	target    vegeta.Target
	transport *http.Transport
}

// newTransport returns the HTTP transport of every attack in a run, with
// vegeta's default connection settings. The run keeps it, so it can close
// the idle connections at the end: the in-process server's shutdown waits
// for a connection that was opened but never used.
func newTransport() *http.Transport {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: vegeta.DefaultConnections,
	}
}

// newAttacker returns an attacker with the run's settings. The response
// body is not kept, because every figure comes from the status, the
// headers and the timing.
func (r *runner) newAttacker() *vegeta.Attacker {
	options := []func(*vegeta.Attacker){
		vegeta.Client(&http.Client{Transport: r.transport}),
		vegeta.Timeout(r.opts.Timeout),
		vegeta.MaxBody(0),
	}
	if r.opts.MaxWorkers > 0 {
		options = append(options, vegeta.MaxWorkers(uint64(r.opts.MaxWorkers)))
	}
	return vegeta.NewAttacker(options...)
}

// attack runs a, samples memory while it runs in-process, and adds its
// report to the run's.
func (r *runner) attack(ctx context.Context, a attack, observe func(*vegeta.Result)) RunReport {
	var memory <-chan *MemoryReport
	stop := make(chan struct{})
	if r.server != nil {
		// The embedded cluster keeps a copy of every API call it served.
		// Clearing that record as the run goes keeps it out of the memory
		// figures, which then hold wfevents and the Workflows it created.
		memory = sampleMemory(stop, r.server.ClearAPIRecord)
	}

	run := a.run(ctx, r.newAttacker, r.target, func(result *vegeta.Result) {
		if observe != nil {
			observe(result)
		}
		if r.opts.Observe != nil {
			r.opts.Observe(result)
		}
	})

	close(stop)
	if memory != nil {
		run.Memory = <-memory
	}
	r.report.Runs = append(r.report.Runs, run)
	return run
}
