package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/wfevents/wfevents/sim"
)

const simulateUsage = `Usage: wfevents simulate [flags] STREAM

Simulate predicts how the event pipeline copes with a recorded stream
(JSON Lines, "-" for stdin): how many events would get 503, how full the
pipeline gets over time, and the delay from receipt to Workflow creation.

It first replays the stream on --fixtures, as "wfevents replay" does, to
learn which requests pass admission and how many Workflows each creates.
Then it runs the pipeline on a virtual clock: requests arrive at their
recorded times divided by --speed, a full pipeline rejects them, workers
take events in order, and each Workflow create takes --api-latency. The
same inputs and --seed give the same report, and a simulation runs far
faster than real time.

--api-latency is a fixed duration such as 20ms, or a distribution:
uniform:10ms-50ms, normal:MEAN,STDDEV, exponential:MEAN or
lognormal:MEDIAN,P99. Negative samples of normal count as 0, which raises
its mean when STDDEV is more than about half of MEAN.

With --sweep, it simulates every pair of --sweep-sizes and --sweep-workers,
up to 4,096 pairs, and prints a table of 503s and p99 delays. --chart writes
it as an SVG chart. --depth-chart writes the pipeline depth over time of the
settings given by --event-pipeline-size and --event-worker-count as an SVG
chart.

NOTE: the model leaves out admission's CPU time, template reads, retries
of failed creates and Retry-After, so it predicts a lower bound on delays.

Flags:
`

// simulateOptions are the flags and arguments of "wfevents simulate".
type simulateOptions struct {
	source replaySource
	output string

	settings sim.Settings

	sweep        bool
	sweepSizes   string
	sweepWorkers string
	chart        string
	depthChart   string
	intervals    int
}

func parseSimulateFlags(args []string, stderr io.Writer) (simulateOptions, error) {
	opts := simulateOptions{settings: sim.Settings{
		PipelineSize: 64,
		Workers:      4,
		Speed:        1,
		APILatency:   sim.FixedLatency(20 * time.Millisecond),
		Seed:         1,
	}}
	flags := flag.NewFlagSet("wfevents simulate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, simulateUsage)
		flags.PrintDefaults()
	}
	opts.source.register(flags)
	flags.StringVar(&opts.output, "output", "table", "report `format`: table or json")
	flags.IntVar(&opts.settings.PipelineSize, "event-pipeline-size", opts.settings.PipelineSize, "`events` the pipeline holds at once, queued or being processed")
	flags.IntVar(&opts.settings.PipelineSize, "event-operation-queue-size", opts.settings.PipelineSize, "alias of --event-pipeline-size, Argo's name")
	flags.IntVar(&opts.settings.Workers, "event-worker-count", opts.settings.Workers, "`workers` that process events")
	flags.Float64Var(&opts.settings.Speed, "speed", opts.settings.Speed, "`factor` the recorded inter-arrival times are divided by: 1 is real time, 10 ten times the traffic")
	flags.Var(&opts.settings.APILatency, "api-latency", "`latency` of each Workflow create: a duration or a distribution (see above)")
	flags.Uint64Var(&opts.settings.Seed, "seed", opts.settings.Seed, "`seed` of the latency samples")
	flags.BoolVar(&opts.sweep, "sweep", false, "simulate every pair of --sweep-sizes and --sweep-workers")
	flags.StringVar(&opts.sweepSizes, "sweep-sizes", "8,16,32,64,128,256", "pipeline `sizes` of the sweep: values and ranges, such as 16,32,64 or 1-8")
	flags.StringVar(&opts.sweepWorkers, "sweep-workers", "1,2,4,8,16", "worker `counts` of the sweep: values and ranges")
	flags.StringVar(&opts.chart, "chart", "", "SVG `file` to write the sweep's 503s by pipeline size to (needs --sweep)")
	flags.StringVar(&opts.depthChart, "depth-chart", "", "SVG `file` to write the pipeline depth over time to")
	flags.IntVar(&opts.intervals, "intervals", 20, "`count` of intervals in the depth-over-time table")

	if err := opts.source.parse(flags, args, stderr); err != nil {
		return opts, err
	}
	if err := opts.validate(); err != nil {
		fmt.Fprintf(stderr, "wfevents simulate: %v\n", err)
		return opts, errUsage
	}
	return opts, nil
}

// validate checks the values that the flag package cannot, naming the flag.
func (opts simulateOptions) validate() error {
	if opts.output != "table" && opts.output != "json" {
		return fmt.Errorf("invalid --output %q: use table or json", opts.output)
	}
	if opts.settings.PipelineSize < 1 {
		return fmt.Errorf("invalid --event-pipeline-size %d: must be at least 1", opts.settings.PipelineSize)
	}
	if opts.settings.Workers < 1 {
		return fmt.Errorf("invalid --event-worker-count %d: must be at least 1", opts.settings.Workers)
	}
	if !(opts.settings.Speed > 0) || math.IsInf(opts.settings.Speed, 1) {
		return fmt.Errorf("invalid --speed %v: must be a positive finite number, such as 1 for real time", opts.settings.Speed)
	}
	if opts.intervals < 1 || opts.intervals > 1000 {
		return fmt.Errorf("invalid --intervals %d: must be from 1 to 1000", opts.intervals)
	}
	if opts.chart != "" && !opts.sweep {
		return errors.New("--chart draws a sweep: add --sweep, or use --depth-chart for one setting")
	}
	return nil
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseSimulateFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	arrivals, input, err := replayForSimulation(ctx, opts, stderr)
	if err != nil {
		return err
	}

	if opts.sweep {
		return runSweep(arrivals, input, opts, stdout)
	}
	result, err := sim.Simulate(arrivals, opts.settings)
	if err != nil {
		return err
	}
	if opts.depthChart != "" {
		if err := writeDepthChart(opts.depthChart, result); err != nil {
			return err
		}
	}

	summary := sim.Summarize(result, input, opts.intervals)
	if opts.output == "json" {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		return encoder.Encode(summary)
	}
	return sim.WriteSummary(stdout, summary)
}

// replayForSimulation replays the stream to learn each request's admission
// and Workflow count.
func replayForSimulation(ctx context.Context, opts simulateOptions, stderr io.Writer) ([]sim.Arrival, sim.ArrivalStats, error) {
	requests, report, err := opts.source.replay(ctx)
	if err != nil {
		return nil, sim.ArrivalStats{}, err
	}

	// A recording's deliveries fail on their redacted signatures unless
	// signed again, which would leave them out of the load unnoticed.
	if !opts.source.trustSignatures {
		unsigned := 0
		for i, result := range report.Events {
			if result.Status == http.StatusUnauthorized && sim.HasRedactedSignature(requests[i]) {
				unsigned++
			}
		}
		if unsigned > 0 {
			fmt.Fprintf(stderr, "warning: %d webhook deliveries got 401 because their signatures were redacted when recorded, so they count as not admitted: add --trust-signatures to count them as the deliveries they were\n", unsigned)
		}
	}
	return sim.Arrivals(requests, report)
}

// runSweep simulates the grid of the sweep flags and writes its table and
// charts.
func runSweep(arrivals []sim.Arrival, input sim.ArrivalStats, opts simulateOptions, stdout io.Writer) error {
	sizes, err := sim.ParseGrid(opts.sweepSizes)
	if err != nil {
		return fmt.Errorf("--sweep-sizes: %w", err)
	}
	workers, err := sim.ParseGrid(opts.sweepWorkers)
	if err != nil {
		return fmt.Errorf("--sweep-workers: %w", err)
	}
	rows, err := sim.Sweep(arrivals, opts.settings, sizes, workers)
	if err != nil {
		return err
	}

	if opts.chart != "" {
		var buf bytes.Buffer
		if err := sim.WriteSweepChart(&buf, rows); err != nil {
			return err
		}
		if err := os.WriteFile(opts.chart, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write --chart: %w", err)
		}
	}
	if opts.depthChart != "" {
		result, err := sim.Simulate(arrivals, opts.settings)
		if err != nil {
			return err
		}
		if err := writeDepthChart(opts.depthChart, result); err != nil {
			return err
		}
	}

	if opts.output == "json" {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		return encoder.Encode(sweepReport{
			Requests:   len(arrivals),
			APILatency: opts.settings.APILatency.String(),
			Speed:      opts.settings.Speed,
			Seed:       opts.settings.Seed,
			Input:      input,
			Rows:       sweepJSON(rows),
		})
	}
	fmt.Fprintf(stdout, "%d requests, API latency %s per create, speed %g, seed %d\n",
		len(arrivals), opts.settings.APILatency, opts.settings.Speed, opts.settings.Seed)
	if input.OtherPaths > 0 || input.Estimated > 0 || input.NotReplayed > 0 {
		fmt.Fprintf(stdout, "(%d left out for other paths, %d recorded 503s estimated, %d not replayed)\n",
			input.OtherPaths, input.Estimated, input.NotReplayed)
	}
	fmt.Fprintln(stdout)
	return sim.WriteSweepTable(stdout, rows)
}

// sweepReport is the JSON form of a sweep: what the table's heading and
// rows show.
type sweepReport struct {
	Requests   int              `json:"requests"`
	APILatency string           `json:"apiLatency"`
	Speed      float64          `json:"speed"`
	Seed       uint64           `json:"seed"`
	Input      sim.ArrivalStats `json:"input"`
	Rows       []sweepRowJSON   `json:"rows"`
}

// sweepRowJSON is a sweep row with the delay in seconds.
type sweepRowJSON struct {
	PipelineSize    int     `json:"pipelineSize"`
	Workers         int     `json:"workers"`
	Rejected        int     `json:"rejected"`
	P99DelaySeconds float64 `json:"p99DelaySeconds"`
	MaxDepth        int     `json:"maxDepth"`
}

func sweepJSON(rows []sim.SweepRow) []sweepRowJSON {
	out := make([]sweepRowJSON, len(rows))
	for i, row := range rows {
		out[i] = sweepRowJSON{
			PipelineSize:    row.PipelineSize,
			Workers:         row.Workers,
			Rejected:        row.Rejected,
			P99DelaySeconds: row.P99Delay.Seconds(),
			MaxDepth:        row.MaxDepth,
		}
	}
	return out
}

func writeDepthChart(path string, result sim.Result) error {
	var buf bytes.Buffer
	title := fmt.Sprintf("Pipeline depth: size %d, %d workers, API latency %s",
		result.Settings.PipelineSize, result.Settings.Workers, result.Settings.APILatency)
	if err := sim.WriteDepthChart(&buf, result, title); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write --depth-chart: %w", err)
	}
	return nil
}
