package loadtest

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attack is one vegeta attack: a constant rate, bounded in time and in
// requests.
type attack struct {
	name        string
	rate        int // requests per second; 0 sends as fast as the attack workers can
	duration    time.Duration
	maxRequests uint64
}

// pacer returns the attack's pacer.
func (a attack) pacer() vegeta.Pacer {
	return boundedPacer{ConstantPacer: vegeta.ConstantPacer{Freq: a.rate, Per: time.Second}, max: a.maxRequests}
}

// boundedPacer is a constant rate that stops after max requests. A zero
// rate sends as fast as the attack workers can.
type boundedPacer struct {
	vegeta.ConstantPacer
	max uint64
}

// Pace implements vegeta.Pacer.
func (p boundedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.max {
		return 0, true
	}
	return p.ConstantPacer.Pace(elapsed, hits)
}

// newEventTarget returns the request every attack sends: a POST of a JSON
// body of bodyBytes bytes, at least the size of its fixed fields, with the
// token and headers.
func newEventTarget(url, token string, headers http.Header, bodyBytes int) vegeta.Target {
	header := headers.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Authorization", "Bearer "+token)
	header.Set("Content-Type", "application/json")
	return vegeta.Target{Method: http.MethodPost, URL: url, Header: header, Body: eventBody(bodyBytes)}
}

// eventBody returns a JSON object with a non-empty message, padded to size
// bytes where size allows.
func eventBody(size int) []byte {
	const prefix, suffix = `{"message":"wfevents load test","padding":"`, `"}`
	padding := max(size-len(prefix)-len(suffix), 0)
	return []byte(prefix + strings.Repeat("x", padding) + suffix)
}

// run sends the attack and returns its summary. observe, when set, is
// called with every result in the order they arrive. Cancelling ctx stops sending, and
// the requests in flight end within the attacker's timeout.
func (a attack) run(ctx context.Context, newAttacker func() *vegeta.Attacker, target vegeta.Target, observe func(*vegeta.Result)) RunReport {
	// An Attacker can run one attack only, because it stays stopped after
	// its first attack ends.
	attacker := newAttacker()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			attacker.Stop()
		case <-stopped:
		}
	}()

	var collected collector
	for result := range attacker.Attack(vegeta.NewStaticTargeter(target), a.pacer(), a.duration, a.name) {
		collected.add(result)
		if observe != nil {
			observe(result)
		}
	}
	return collected.report(a)
}

// collector summarises the results of one attack.
type collector struct {
	metrics  vegeta.Metrics
	byStatus map[uint16]*vegeta.LatencyMetrics
	counts   map[uint16]int

	// noRetryAfter counts 503 responses without a Retry-After header.
	noRetryAfter int
}

func (c *collector) add(result *vegeta.Result) {
	if c.byStatus == nil {
		c.byStatus = make(map[uint16]*vegeta.LatencyMetrics)
		c.counts = make(map[uint16]int)
	}
	c.metrics.Add(result)
	latencies := c.byStatus[result.Code]
	if latencies == nil {
		latencies = &vegeta.LatencyMetrics{}
		c.byStatus[result.Code] = latencies
	}
	latencies.Add(result.Latency)
	c.counts[result.Code]++
	if result.Code == http.StatusServiceUnavailable && result.Headers.Get("Retry-After") == "" {
		c.noRetryAfter++
	}
}

func (c *collector) report(a attack) RunReport {
	c.metrics.Close()
	run := RunReport{
		Name:         a.name,
		TargetRate:   a.rate,
		Requests:     c.metrics.Requests,
		Seconds:      (c.metrics.Duration + c.metrics.Wait).Seconds(),
		Rate:         c.metrics.Rate,
		Throughput:   c.metrics.Throughput,
		Latency:      summarise(c.metrics.Latencies, int(c.metrics.Requests)),
		Status:       make(map[string]StatusReport, len(c.counts)),
		NoRetryAfter: c.noRetryAfter,
		Errors:       firstErrors(c.metrics.Errors),
	}
	for code, count := range c.counts {
		run.Status[statusKey(code)] = StatusReport{Count: count, Latency: summarise(*c.byStatus[code], count)}
	}
	return run
}

// statusKey names a status code in reports. Code 0 is a request that got no
// response: a connection error or a timeout.
func statusKey(code uint16) string {
	if code == 0 {
		return StatusNoResponse
	}
	return strconv.Itoa(int(code))
}

// summarise reads the percentiles of count latencies from vegeta's t-digest
// estimate.
func summarise(latencies vegeta.LatencyMetrics, count int) Latency {
	if count == 0 {
		return Latency{}
	}
	return Latency{
		Mean: milliseconds(latencies.Total / time.Duration(count)),
		P50:  milliseconds(latencies.Quantile(0.50)),
		P90:  milliseconds(latencies.Quantile(0.90)),
		P99:  milliseconds(latencies.Quantile(0.99)),
		Max:  milliseconds(latencies.Max),
	}
}

func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// maxErrors bounds the distinct error messages a report lists.
const maxErrors = 10

// firstErrors returns the distinct error messages that are not an HTTP
// status line, which the status counts already show, up to maxErrors.
func firstErrors(errs []string) []string {
	var messages []string
	for _, message := range errs {
		if isStatusLine(message) {
			continue
		}
		messages = append(messages, message)
		if len(messages) == maxErrors {
			break
		}
	}
	return slices.Clip(messages)
}

// isStatusLine reports whether message is vegeta's error for a response
// with an error status, such as "503 Service Unavailable".
func isStatusLine(message string) bool {
	code, text, found := strings.Cut(message, " ")
	status, err := strconv.Atoi(code)
	return found && err == nil && http.StatusText(status) == text
}
