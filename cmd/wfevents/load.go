package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/tsenart/vegeta/v12/lib/plot"

	"github.com/wfevents/wfevents/loadtest"
	"github.com/wfevents/wfevents/workers"
)

const loadUsage = `Usage: wfevents load SCENARIO [flags]

Load sends events to the events endpoint with the vegeta library and reports
latency percentiles, status codes and throughput. Without --url it starts
wfevents in this process on an embedded cluster seeded from the built-in
fixtures, listening on 127.0.0.1, so no cluster is needed. Every run stops
after --duration or --max-requests, whichever comes first.

Scenarios:
  limit     hold the workers, send --max-requests events, and check that
            exactly --event-pipeline-size are accepted and the rest get 503
            with Retry-After; then release the workers and check that every
            accepted event created exactly one Workflow. In-process only:
            with --url it is skipped.
  capacity  raise the rate from --start-rate by --rate-factor for steps of
            --step-duration until a step has 0.1% or more 503s, another
            status, p99 over --max-p99, or falls short of the rate; then
            narrow the interval in --refine-steps more steps. Reports the
            highest sustained rate. The pipeline absorbs a burst of its
            size, so a rate up to size/step-duration above what the workers
            keep up with still counts as sustained; longer steps are finer.
  rate      send at --rate for --duration.

The default event is the reference example: POST /api/v1/events/argo with
the token admin-token, the header X-Argo-E2E: true and a 1 KiB JSON body
with a message, which creates one Workflow from the template event-consumer.

Exit status: 0 when the run completed and its checks passed, 2 otherwise.

Flags:
`

// loadOptions are the flags of "wfevents load" beyond loadtest.Options.
type loadOptions struct {
	run        loadtest.Options
	rate       int
	headers    http.Header
	jsonFile   string
	plotFile   string
	cpuProfile string
	memProfile string
	logLevel   slog.Level
}

// inProcessFlags configure the in-process server, so --url rules them out.
var inProcessFlags = []string{"event-pipeline-size", "event-worker-count", "api-latency", "api-discard-workflows", "handler"}

func parseLoadFlags(args []string, stderr io.Writer) (loadOptions, error) {
	opts := loadOptions{headers: http.Header{}}
	run := &opts.run
	flags := flag.NewFlagSet("wfevents load", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, loadUsage)
		flags.PrintDefaults()
	}

	// The target and the event.
	flags.StringVar(&run.URL, "url", "", "base `URL` of a running server, such as http://127.0.0.1:2746; without it, an in-process server on 127.0.0.1")
	flags.StringVar(&run.Namespace, "namespace", loadtest.DefaultNamespace, "`namespace` in the events path; an empty value sends cluster-scoped events")
	flags.StringVar(&run.Token, "token", loadtest.DefaultToken, "bearer `token` sent with each event")
	flags.Var(headerFlag(opts.headers), "header", "header `NAME=VALUE` sent with each event, repeatable; replaces the default X-Argo-E2E=true")
	flags.IntVar(&run.BodyBytes, "body-bytes", loadtest.DefaultBodyBytes, "size of the JSON event body in `bytes`")

	// Bounds and pace.
	flags.DurationVar(&run.Duration, "duration", 0, "longest time spent sending (default 10s, or 1m for capacity)")
	flags.IntVar(&run.MaxRequests, "max-requests", 0, fmt.Sprintf("most requests sent; limit sends exactly this many (default %d, or four times the pipeline size for limit)", loadtest.DefaultRequests))
	flags.IntVar(&opts.rate, "rate", loadtest.DefaultRate, "requests per second for limit and rate; 0 sends as fast as --max-workers allow")
	flags.IntVar(&run.MaxWorkers, "max-workers", 0, "most requests in flight at once, vegeta's attack workers (default: as many as the rate needs)")
	flags.DurationVar(&run.Timeout, "timeout", loadtest.DefaultTimeout, "longest wait for one response")

	// The in-process server.
	flags.IntVar(&run.Server.PipelineSize, "event-pipeline-size", workers.DefaultSize, "in-process server: events held at once, queued or being processed")
	flags.IntVar(&run.Server.WorkerCount, "event-worker-count", workers.DefaultWorkers, "in-process server: workers that process events")
	flags.DurationVar(&run.Server.APILatency, "api-latency", 0, "in-process server: delay added to each Workflow create of the embedded cluster")
	flags.BoolVar(&run.Server.DiscardWorkflows, "api-discard-workflows", false, "in-process server: answer Workflow creates without keeping the Workflows, as a real API server keeps them outside this process (not with the limit scenario)")
	flags.StringVar(&run.Server.Handler, "handler", loadtest.HandlerAdmission, "in-process server: admission serves wfevents, noop answers 200 {} to everything, as a baseline")
	flags.TextVar(&opts.logLevel, "log-level", slog.LevelWarn, "in-process server: log `level` on stderr")

	// The capacity search.
	flags.IntVar(&run.StartRate, "start-rate", loadtest.DefaultStartRate, "capacity: rate of the first step, per second")
	flags.Float64Var(&run.RateFactor, "rate-factor", loadtest.DefaultRateFactor, "capacity: factor from one step's rate to the next, above 1")
	flags.DurationVar(&run.StepDuration, "step-duration", loadtest.DefaultStepDuration, "capacity: length of each step")
	flags.IntVar(&run.RefineSteps, "refine-steps", loadtest.DefaultRefineSteps, "capacity: steps that narrow the interval after the first failed step; negative for none")
	flags.DurationVar(&run.MaxP99, "max-p99", loadtest.DefaultMaxP99, "capacity: largest p99 latency of a sustained step")

	// Output.
	flags.StringVar(&opts.jsonFile, "json", "", "write the report as JSON to `file`")
	flags.StringVar(&opts.plotFile, "plot", "", "write an HTML plot of latency over time to `file`")
	flags.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of this process, server included when in-process, to `file`")
	flags.StringVar(&opts.memProfile, "memprofile", "", "write a heap profile of this process to `file` at the end of the run, before the in-process server stops")

	// The scenario comes first, and the flag package stops at the first
	// argument that is not a flag.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && isHelpFlag(args[0]) {
			flags.Usage()
			return opts, flag.ErrHelp
		}
		fmt.Fprintf(stderr, "wfevents load: missing scenario: write it before the flags, as in wfevents load limit --rate 200\n")
		return opts, errUsage
	}
	run.Scenario = args[0]
	if err := parseFlags(flags, args[1:], stderr, ": flags follow the scenario"); err != nil {
		return opts, err
	}
	if err := opts.complete(flags); err != nil {
		fmt.Fprintf(stderr, "wfevents load: %v\n", err)
		return opts, errUsage
	}
	return opts, nil
}

func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// complete turns the flag values into loadtest options and checks what the
// flag package cannot, naming the flag.
func (opts *loadOptions) complete(flags *flag.FlagSet) error {
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })

	run := &opts.run
	if run.URL != "" {
		for _, name := range inProcessFlags {
			if set[name] {
				return fmt.Errorf("invalid --%s with --url: it configures the in-process server, which --url replaces", name)
			}
		}
	}
	switch {
	case opts.rate < 0:
		return fmt.Errorf("invalid --rate %d: must be positive, or 0 for as fast as --max-workers allow", opts.rate)
	case opts.rate == 0 && run.MaxWorkers <= 0:
		return errors.New("invalid --rate 0 without --max-workers: an unpaced run needs a bound on the requests in flight")
	case run.Server.PipelineSize <= 0:
		return fmt.Errorf("invalid --event-pipeline-size %d: must be positive", run.Server.PipelineSize)
	case run.Server.WorkerCount <= 0:
		return fmt.Errorf("invalid --event-worker-count %d: must be positive", run.Server.WorkerCount)
	case run.Timeout <= 0:
		return fmt.Errorf("invalid --timeout %s: must be positive", run.Timeout)
	case run.StepDuration <= 0:
		return fmt.Errorf("invalid --step-duration %s: must be positive", run.StepDuration)
	case run.MaxP99 <= 0:
		return fmt.Errorf("invalid --max-p99 %s: must be positive", run.MaxP99)
	case run.BodyBytes <= 0:
		return fmt.Errorf("invalid --body-bytes %d: must be positive", run.BodyBytes)
	}
	run.Rate, run.Unpaced = opts.rate, opts.rate == 0
	run.ClusterScoped = set["namespace"] && run.Namespace == ""
	if len(opts.headers) > 0 {
		run.Headers = opts.headers
	}
	return nil
}

// runLoad runs one load scenario and prints its summary to stdout.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	opts, err := parseLoadFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	opts.run.Server.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))

	// Profile the whole run, the in-process server included.
	if opts.cpuProfile != "" {
		stopProfile, profileErr := startCPUProfile(opts.cpuProfile)
		if profileErr != nil {
			return profileErr
		}
		defer func() { err = errors.Join(err, stopProfile()) }()
	}
	// The heap profile is taken while the in-process server still holds
	// what the run left in it.
	var memProfileErr error
	if opts.memProfile != "" {
		opts.run.BeforeClose = func() {
			runtime.GC()
			memProfileErr = writeFile(opts.memProfile, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) })
		}
	}
	var latencyPlot *plot.Plot
	var plotErr error
	if opts.plotFile != "" {
		latencyPlot = loadtest.NewPlot("wfevents load " + opts.run.Scenario)
		opts.run.Observe = func(result *vegeta.Result) {
			if err := latencyPlot.Add(result); err != nil && plotErr == nil {
				plotErr = err
			}
		}
	}

	// Run, then write the summary and the files. A run that took place but
	// failed to stop its server still reports.
	report, err := loadtest.Run(ctx, opts.run)
	if report == nil {
		return fmt.Errorf("load %s: %w", opts.run.Scenario, err)
	}
	if err != nil {
		defer func(runErr error) { err = errors.Join(fmt.Errorf("load %s: %w", opts.run.Scenario, runErr), err) }(err)
	}
	if err := report.WriteText(stdout); err != nil {
		return fmt.Errorf("write the summary: %w", err)
	}
	if opts.jsonFile != "" {
		if err := writeFile(opts.jsonFile, report.WriteJSON); err != nil {
			return err
		}
	}
	if plotErr != nil {
		return fmt.Errorf("plot the latencies into %s: %w", opts.plotFile, plotErr)
	}
	if latencyPlot != nil && report.Skipped == "" {
		latencyPlot.Close()
		if err := writeFile(opts.plotFile, func(w io.Writer) error { _, err := latencyPlot.WriteTo(w); return err }); err != nil {
			return err
		}
	}
	if memProfileErr != nil {
		return memProfileErr
	}

	if failed := report.Failed(); len(failed) > 0 {
		return fmt.Errorf("load %s: %d of %d checks failed, the first: %s: %s", report.Scenario, len(failed), len(report.Checks), failed[0].Name, failed[0].Detail)
	}
	return nil
}

// startCPUProfile starts profiling into a new file and returns the function
// that stops it and closes the file.
func startCPUProfile(name string) (stop func() error, err error) {
	file, err := createFile(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		file.Close()
		return nil, fmt.Errorf("start the CPU profile into %s: %w", name, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := file.Close(); err != nil {
			return fmt.Errorf("write the CPU profile %s: %w", name, err)
		}
		return nil
	}, nil
}

// writeFile creates name, with its directory, and writes it with write.
func writeFile(name string, write func(io.Writer) error) error {
	file, err := createFile(name)
	if err != nil {
		return err
	}
	err = write(file)
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func createFile(name string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, fmt.Errorf("create the directory of %s: %w", name, err)
	}
	file, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return file, nil
}
