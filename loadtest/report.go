package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of a run. Its JSON form is what --json writes, and
// WriteText prints the summary. Latencies are in milliseconds and memory in
// MiB.
type Report struct {
	Scenario string `json:"scenario"`

	// URL is the events URL the requests went to.
	URL string `json:"url"`

	// Server holds the in-process server's settings, and is nil against a
	// URL.
	Server *ServerReport `json:"server,omitempty"`

	Machine Machine   `json:"machine"`
	Started time.Time `json:"started"`

	// Runs has one entry per attack: one for limit and rate, one per step
	// for capacity.
	Runs []RunReport `json:"runs"`

	Limit    *LimitReport    `json:"limit,omitempty"`
	Capacity *CapacityReport `json:"capacity,omitempty"`

	// Checks are the scenario's pass or fail conditions.
	Checks []Check `json:"checks,omitempty"`

	// Skipped, when set, is the reason the scenario did not run.
	Skipped string `json:"skipped,omitempty"`
}

// ServerReport describes the in-process server. The no-op handler has no
// pipeline, so its report has only the handler.
type ServerReport struct {
	Handler      string  `json:"handler"`
	PipelineSize int     `json:"pipeline_size,omitempty"`
	WorkerCount  int     `json:"worker_count,omitempty"`
	APILatency   float64 `json:"api_latency_ms,omitempty"`

	// DiscardWorkflows reports that the embedded cluster kept no Workflow.
	DiscardWorkflows bool `json:"discard_workflows,omitempty"`
}

// Machine describes where the run took place. The load averages, read from
// /proc/loadavg at the start and the end of the run, show whether other
// processes competed for the CPUs.
type Machine struct {
	OS             string `json:"os"`
	Arch           string `json:"arch"`
	CPUs           int    `json:"cpus"`
	GOMAXPROCS     int    `json:"gomaxprocs"`
	GoVersion      string `json:"go_version"`
	LoadAtStart    string `json:"load_average_start,omitempty"`
	LoadAtEnd      string `json:"load_average_end,omitempty"`
	LoadGenerators string `json:"load_generator"`
}

// RunReport summarises one attack.
type RunReport struct {
	Name string `json:"name"`

	// TargetRate is the requested rate per second; 0 means as fast as the
	// attack workers could send.
	TargetRate int `json:"target_rate"`

	Requests uint64 `json:"requests"`

	// Seconds runs from the first request to the last response.
	Seconds float64 `json:"seconds"`

	// Rate is the rate at which requests were sent, per second.
	Rate float64 `json:"rate"`

	// Throughput is the rate of 2xx and 3xx responses, per second.
	Throughput float64 `json:"throughput"`

	Latency Latency `json:"latency_ms"`

	// Status counts the responses by status code, with their latencies.
	// StatusNoResponse counts requests that got no response.
	Status map[string]StatusReport `json:"status"`

	// NoRetryAfter counts 503 responses without a Retry-After header.
	NoRetryAfter int `json:"no_retry_after"`

	// Errors lists distinct errors other than error statuses, such as
	// connection failures and timeouts.
	Errors []string `json:"errors,omitempty"`

	// Memory samples this process while the attack ran. It is nil against
	// a URL, where the server is another process.
	Memory *MemoryReport `json:"memory,omitempty"`

	// Step is the capacity scenario's verdict on this run.
	Step *StepVerdict `json:"step,omitempty"`
}

// StatusNoResponse is the status key of requests that got no response.
const StatusNoResponse = "none"

// Count returns the number of responses with status code.
func (r RunReport) Count(code int) int {
	return r.Status[statusKey(uint16(code))].Count
}

// Latency holds latency percentiles in milliseconds, estimated by vegeta's
// t-digest, and the exact maximum.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// StatusReport is the count and latency of the responses with one status.
type StatusReport struct {
	Count   int     `json:"count"`
	Latency Latency `json:"latency_ms"`
}

// MemoryReport holds the memory samples of an in-process run. The process
// contains both the server and the load generator, so its resident set is
// an upper bound on the server's.
type MemoryReport struct {
	RSSPeak  float64        `json:"rss_peak_mib"`
	HeapPeak float64        `json:"heap_peak_mib"`
	Samples  []MemorySample `json:"samples"`
}

// MemorySample is one reading of this process's memory.
type MemorySample struct {
	Seconds    float64 `json:"seconds"`
	RSS        float64 `json:"rss_mib"`
	Heap       float64 `json:"heap_mib"`
	Goroutines int     `json:"goroutines"`
}

// StepVerdict is the decision on whether one capacity step sustained its
// rate.
type StepVerdict struct {
	Sustained bool   `json:"sustained"`
	Reason    string `json:"reason,omitempty"`
}

// LimitReport is the result of the limit scenario.
type LimitReport struct {
	PipelineSize int `json:"pipeline_size"`
	Sent         int `json:"sent"`
	Accepted     int `json:"accepted"`
	Rejected     int `json:"rejected"`

	// HeldDepth is the pipeline depth after the last response, with the
	// workers held.
	HeldDepth int `json:"held_depth"`

	// Processed counts the accepted events that created exactly one
	// Workflow after the workers were released.
	Processed int `json:"processed"`

	// Duplicated and Missing list the accepted events that created more
	// than one Workflow, or none.
	Duplicated []string `json:"duplicated,omitempty"`
	Missing    []string `json:"missing,omitempty"`

	// Unexpected counts Workflows whose event was not accepted.
	Unexpected int `json:"unexpected"`
}

// CapacityReport is the result of the capacity scenario.
type CapacityReport struct {
	MaxP99          float64 `json:"max_p99_ms"`
	MaxUnavailable  float64 `json:"max_503_fraction"`
	SustainedRate   int     `json:"sustained_rate"`
	FirstFailedRate int     `json:"first_failed_rate,omitempty"`
	FailReason      string  `json:"fail_reason,omitempty"`

	// StoppedBy is the reason the search ended before a step failed: the
	// time or request budget.
	StoppedBy string `json:"stopped_by,omitempty"`
}

// Check is one pass or fail condition of a scenario.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Check {
	var failed []Check
	for _, check := range r.Checks {
		if !check.Passed {
			failed = append(failed, check)
		}
	}
	return failed
}

func (r *Report) check(name string, passed bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Passed: passed, Detail: fmt.Sprintf(format, args...)})
}

// currentMachine describes this machine now.
func currentMachine() Machine {
	return Machine{
		OS:             runtime.GOOS,
		Arch:           runtime.GOARCH,
		CPUs:           runtime.NumCPU(),
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		GoVersion:      runtime.Version(),
		LoadAtStart:    loadAverage(),
		LoadGenerators: "vegeta v12.13.0 library, in this process",
	}
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "" where
// /proc/loadavg does not exist.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(data))
	return strings.Join(fields[:min(3, len(fields))], " ")
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}

// WriteText writes the human-readable summary of r.
func (r *Report) WriteText(w io.Writer) error {
	p := &printer{w: w}
	p.printf("wfevents load %s: %s\n", r.Scenario, r.URL)
	switch {
	case r.Server != nil && r.Server.Handler == HandlerNoop:
		p.printf("in-process server: handler %s, which does nothing\n", r.Server.Handler)
	case r.Server != nil:
		storage := ""
		if r.Server.DiscardWorkflows {
			storage = ", Workflows not kept"
		}
		p.printf("in-process server: handler %s, pipeline size %d, %d workers, API latency %s%s\n",
			r.Server.Handler, r.Server.PipelineSize, r.Server.WorkerCount, time.Duration(r.Server.APILatency*float64(time.Millisecond)), storage)
	}
	p.printf("machine: %d CPUs, GOMAXPROCS %d, %s, load average %s at start, %s at end\n",
		r.Machine.CPUs, r.Machine.GOMAXPROCS, r.Machine.GoVersion, r.Machine.LoadAtStart, r.Machine.LoadAtEnd)
	if r.Skipped != "" {
		p.printf("skipped: %s\n", r.Skipped)
		return p.err
	}

	if r.Capacity != nil {
		r.writeSteps(p)
	} else {
		for _, run := range r.Runs {
			writeRun(p, run)
		}
	}
	if r.Limit != nil {
		p.printf("limit: sent %d, accepted %d, rejected %d with 503, pipeline size %d, %d held, %d processed once\n",
			r.Limit.Sent, r.Limit.Accepted, r.Limit.Rejected, r.Limit.PipelineSize, r.Limit.HeldDepth, r.Limit.Processed)
	}

	if len(r.Checks) > 0 {
		p.printf("checks:\n")
		for _, check := range r.Checks {
			verdict := "ok  "
			if !check.Passed {
				verdict = "FAIL"
			}
			p.printf("  %s %s: %s\n", verdict, check.Name, check.Detail)
		}
	}
	return p.err
}

// writeRun prints one attack: totals, then one line per status code.
func writeRun(p *printer, run RunReport) {
	p.printf("%s: %d requests in %.2fs, sent at %.1f/s, %.1f successful responses/s\n",
		run.Name, run.Requests, run.Seconds, run.Rate, run.Throughput)
	tw := tabwriter.NewWriter(p, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  status\tcount\tmean ms\tp50 ms\tp90 ms\tp99 ms\tmax ms\t\n")
	writeLatencyRow(tw, "all", int(run.Requests), run.Latency)
	for _, code := range slices.Sorted(maps.Keys(run.Status)) {
		status := run.Status[code]
		writeLatencyRow(tw, code, status.Count, status.Latency)
	}
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	if run.NoRetryAfter > 0 {
		p.printf("  %d responses with 503 had no Retry-After header\n", run.NoRetryAfter)
	}
	for _, message := range run.Errors {
		p.printf("  error: %s\n", message)
	}
	if m := run.Memory; m != nil && len(m.Samples) > 0 {
		first, last := m.Samples[0], m.Samples[len(m.Samples)-1]
		p.printf("  memory of this process: RSS %.1f MiB at start, %.1f peak, %.1f at end; Go heap %.1f MiB at start, %.1f peak, %.1f at end\n",
			first.RSS, m.RSSPeak, last.RSS, first.Heap, m.HeapPeak, last.Heap)
	}
}

func writeLatencyRow(w io.Writer, status string, count int, l Latency) {
	fmt.Fprintf(w, "  %s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", status, count, l.Mean, l.P50, l.P90, l.P99, l.Max)
}

// writeSteps prints the capacity steps as a table, then the result.
func (r *Report) writeSteps(p *printer) {
	tw := tabwriter.NewWriter(p, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "rate/s\trequests\tsent/s\t503\tp99 ms\tmax ms\tresult\n")
	for _, run := range r.Runs {
		result := "sustained"
		if run.Step != nil && !run.Step.Sustained {
			result = "not sustained: " + run.Step.Reason
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%d\t%.3f\t%.3f\t%s\n",
			run.TargetRate, run.Requests, run.Rate, run.Count(503), run.Latency.P99, run.Latency.Max, result)
	}
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}

	c := r.Capacity
	if c.SustainedRate == 0 {
		p.printf("no rate was sustained with under %.1f%% 503s and p99 under %.3f ms\n", 100*c.MaxUnavailable, c.MaxP99)
	} else {
		p.printf("highest sustained rate: %d/s with under %.1f%% 503s and p99 under %.3f ms\n", c.SustainedRate, 100*c.MaxUnavailable, c.MaxP99)
	}
	if c.FirstFailedRate > 0 {
		p.printf("lowest rate not sustained: %d/s: %s\n", c.FirstFailedRate, c.FailReason)
	}
	if c.StoppedBy != "" {
		p.printf("search stopped early: %s\n", c.StoppedBy)
	}
	var rssPeak, heapPeak float64
	for _, run := range r.Runs {
		if m := run.Memory; m != nil {
			rssPeak, heapPeak = max(rssPeak, m.RSSPeak), max(heapPeak, m.HeapPeak)
		}
	}
	if rssPeak > 0 {
		p.printf("memory of this process: RSS peak %.1f MiB, Go heap peak %.1f MiB\n", rssPeak, heapPeak)
	}
}

// printer keeps the first write error, so a summary checks it once.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) Write(data []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.w.Write(data)
	p.err = err
	return n, err
}

func (p *printer) printf(format string, args ...any) {
	fmt.Fprintf(p, format, args...)
}
