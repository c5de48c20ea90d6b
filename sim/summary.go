package sim

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// Arrivals turns a stream and its replay into the input of Simulate. The
// replay decides admission. An event the server queued takes a pipeline
// slot and creates the Workflows the replay listed. Any other request to
// the events endpoint, such as a 401, a dry run or a GitHub ping, takes no
// slot. Requests to other paths never meet the pipeline and are left out.
// report must hold the results of requests, in order.
//
// A line the recording server rejected with 503 before reading it has no
// body to replay. It stands for an event that needed a slot, so it counts
// as admitted. Its Workflow count is the mean of the queued events rounded
// up, or 1 when none was queued. Rounding up errs towards more load, the
// safe side for sizing.
//
// NOTE: a redelivery's Workflow counts as one create, though the server
// makes a create and a read for it. Failed creates count as none.
func Arrivals(requests []Request, report Report) ([]Arrival, ArrivalStats, error) {
	var stats ArrivalStats
	if len(requests) != len(report.Events) {
		return nil, stats, fmt.Errorf("the replay has %d results for %d requests", len(report.Events), len(requests))
	}
	if len(requests) == 0 {
		return nil, stats, nil
	}

	first := requests[0].Time
	queued, creates := 0, 0
	for i, req := range requests {
		if req.Time.IsZero() {
			return nil, stats, fmt.Errorf("line %d has no \"time\": a simulation needs the receive time of every request", req.Line)
		}
		if req.Time.Before(first) {
			first = req.Time
		}
		if report.Events[i].Queued {
			queued++
			creates += len(report.Events[i].Workflows)
		}
	}
	stats.EstimatedCreates = 1
	if queued > 0 {
		stats.EstimatedCreates = (creates + queued - 1) / queued
	}

	arrivals := make([]Arrival, 0, len(requests))
	for i, req := range requests {
		if !strings.HasPrefix(req.Path, eventsPathPrefix) {
			stats.OtherPaths++
			continue
		}
		at := req.Time.Sub(first)
		if at == math.MaxInt64 {
			return nil, stats, fmt.Errorf("line %d: its time %s is more than 292 years after the first request's, %s, which a simulation cannot represent", req.Line, req.Time.Format(time.RFC3339), first.Format(time.RFC3339))
		}

		result := report.Events[i]
		arrival := Arrival{At: at, Admitted: result.Queued, Creates: len(result.Workflows)}
		switch {
		case req.BodyIncomplete && req.Status == http.StatusServiceUnavailable:
			arrival.Admitted, arrival.Creates = true, stats.EstimatedCreates
			stats.Estimated++
		case result.Status == 0:
			stats.NotReplayed++
		}
		arrivals = append(arrivals, arrival)
	}
	return arrivals, stats, nil
}

// ArrivalStats counts the requests that Arrivals did not take from the
// replay as they were.
type ArrivalStats struct {
	// OtherPaths are requests to paths other than the events endpoint,
	// left out.
	OtherPaths int `json:"otherPaths"`

	// Estimated are recorded 503s without a body, each counted as admitted
	// with EstimatedCreates Workflows.
	Estimated        int `json:"estimated"`
	EstimatedCreates int `json:"estimatedCreates"`

	// NotReplayed are other lines that replay could not send, counted as
	// not admitted.
	NotReplayed int `json:"notReplayed"`
}

// Summary is the part of a Result that a person or a program reads: the
// counts, the delays and the depth over time.
type Summary struct {
	PipelineSize int     `json:"pipelineSize"`
	Workers      int     `json:"workers"`
	Speed        float64 `json:"speed"`
	APILatency   string  `json:"apiLatency"`
	Seed         uint64  `json:"seed"`

	// Input counts the requests of the stream that were left out or estimated.
	Input ArrivalStats `json:"input"`

	Requests    int `json:"requests"`
	Accepted    int `json:"accepted"`
	Rejected    int `json:"rejected"`
	NotAdmitted int `json:"notAdmitted"`
	Workflows   int `json:"workflows"`

	// Delay is from receipt to Workflow creation, in seconds.
	Delay DelaySeconds `json:"delaySeconds"`

	MaxDepth int `json:"maxDepth"`

	// LastCreatedSeconds is when the last Workflow was created, in seconds
	// from the first request.
	LastCreatedSeconds float64 `json:"lastCreatedSeconds"`

	// Depth is the largest pipeline depth in each of equal intervals that
	// cover the simulation, each at the interval's start.
	Depth []DepthSample `json:"depth"`
}

// DelaySeconds is Percentiles in seconds.
type DelaySeconds struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// DepthSample is the largest pipeline depth from AtSeconds to the next
// sample.
type DepthSample struct {
	AtSeconds float64 `json:"atSeconds"`
	MaxDepth  int     `json:"maxDepth"`
}

// Summarize returns the summary of r, with the depth over time in
// intervals many intervals. input describes how the arrivals were made.
func Summarize(r Result, input ArrivalStats, intervals int) Summary {
	return Summary{
		Input: input,

		PipelineSize: r.Settings.PipelineSize,
		Workers:      r.Settings.Workers,
		Speed:        r.Settings.Speed,
		APILatency:   r.Settings.APILatency.String(),
		Seed:         r.Settings.Seed,

		Requests:    r.Total,
		Accepted:    r.Accepted,
		Rejected:    r.Rejected,
		NotAdmitted: r.NotAdmitted,
		Workflows:   len(r.Workflows),

		Delay: DelaySeconds{
			P50: r.Delay.P50.Seconds(),
			P90: r.Delay.P90.Seconds(),
			P99: r.Delay.P99.Seconds(),
			Max: r.Delay.Max.Seconds(),
		},
		MaxDepth:           r.MaxDepth,
		LastCreatedSeconds: r.LastCreated.Seconds(),
		Depth:              depthTimeline(r.Depth, intervals),
	}
}

// depthTimeline returns the largest depth in each of intervals equal
// intervals from 0 to the last point of depth. A point on a boundary
// belongs to the interval it starts.
func depthTimeline(depth []DepthPoint, intervals int) []DepthSample {
	if len(depth) == 0 || intervals < 1 {
		return nil
	}
	end := depth[len(depth)-1].At
	width := end / time.Duration(intervals)
	if width <= 0 {
		return []DepthSample{{AtSeconds: 0, MaxDepth: maxDepthOf(depth)}}
	}

	samples := make([]DepthSample, intervals)
	for i := range samples {
		samples[i].AtSeconds = (time.Duration(i) * width).Seconds()
	}
	// The depth at an interval's start carries over from the last point
	// before it, so an interval without points still shows the depth.
	current := 0
	next := 0
	for i := range samples {
		start := time.Duration(i) * width
		limit := start + width
		if i == intervals-1 {
			limit = end + 1
		}
		for next < len(depth) && depth[next].At < start {
			current = depth[next].Depth
			next++
		}
		highest := current
		for next < len(depth) && depth[next].At < limit {
			current = depth[next].Depth
			highest = max(highest, current)
			next++
		}
		samples[i].MaxDepth = highest
	}
	return samples
}

func maxDepthOf(depth []DepthPoint) int {
	highest := 0
	for _, point := range depth {
		highest = max(highest, point.Depth)
	}
	return highest
}

// WriteSummary writes s as text: the settings, the counts, the delays and
// the depth over time.
func WriteSummary(w io.Writer, s Summary) error {
	table := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(table, "settings\tpipeline size %d, %s, API latency %s per create, speed %g, seed %d\n",
		s.PipelineSize, pluralize(s.Workers, "worker"), s.APILatency, s.Speed, s.Seed)
	fmt.Fprintf(table, "requests\t%d\n", s.Requests)
	fmt.Fprintf(table, "accepted\t%d\n", s.Accepted)
	fmt.Fprintf(table, "rejected (503)\t%d\n", s.Rejected)
	fmt.Fprintf(table, "not admitted\t%d\t(401, 400, 403, pings and dry runs: no pipeline slot)\n", s.NotAdmitted)
	fmt.Fprintf(table, "Workflows created\t%d\n", s.Workflows)
	if s.Workflows > 0 {
		fmt.Fprintf(table, "delay to creation\tp50 %s, p90 %s, p99 %s, max %s\n",
			seconds(s.Delay.P50), seconds(s.Delay.P90), seconds(s.Delay.P99), seconds(s.Delay.Max))
	}
	fmt.Fprintf(table, "max depth\t%d of %d\n", s.MaxDepth, s.PipelineSize)
	if s.Workflows > 0 {
		fmt.Fprintf(table, "last Workflow created\tat %s\n", seconds(s.LastCreatedSeconds))
	}
	writeInputNotes(table, s.Input)
	if err := table.Flush(); err != nil {
		return err
	}

	if len(s.Depth) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\npipeline depth over time (the maximum in each interval):")
	table = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(table, "FROM\tMAX DEPTH\t\t")
	for _, sample := range s.Depth {
		bar := strings.Repeat("#", barLength(sample.MaxDepth, s.PipelineSize))
		fmt.Fprintf(table, "%s\t%d\t\t%s\n", seconds(sample.AtSeconds), sample.MaxDepth, bar)
	}
	return table.Flush()
}

// writeInputNotes adds a line for each kind of request that was left out
// or estimated.
func writeInputNotes(w io.Writer, input ArrivalStats) {
	if input.OtherPaths > 0 {
		fmt.Fprintf(w, "left out\t%d\t(requests to paths other than /api/v1/events/)\n", input.OtherPaths)
	}
	if input.Estimated > 0 {
		fmt.Fprintf(w, "estimated\t%d\t(recorded 503s without a body, counted as admitted with %s each)\n", input.Estimated, pluralize(input.EstimatedCreates, "Workflow"))
	}
	if input.NotReplayed > 0 {
		fmt.Fprintf(w, "not replayed\t%d\t(counted as not admitted; wfevents replay shows why)\n", input.NotReplayed)
	}
}

// barWidth is the length of the depth bar of a full pipeline.
const barWidth = 40

func barLength(depth, size int) int {
	if size <= 0 {
		return 0
	}
	return (depth*barWidth + size - 1) / size
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}
