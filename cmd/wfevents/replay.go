package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wfevents/wfevents/fixtures"
	"github.com/wfevents/wfevents/server"
	"github.com/wfevents/wfevents/sim"
)

// errReplayDiffers reports that a replay did not produce what was expected.
// The differences are already printed.
var errReplayDiffers = errors.New("replay differs from the expected result")

const replayUsage = `Usage: wfevents replay [flags] STREAM

Replay sends each request of a recorded stream (JSON Lines, "-" for stdin)
through the server's handler, matcher and workers, one at a time, over an
in-memory cluster seeded from --fixtures. It prints per request the status,
the event ID, the resources matched, the Workflows created with their
parameters, and the errors.

A request whose Authorization header was redacted is sent as its recorded
subject, or as --as, which must have a row in the fixtures' tokens.csv. A
webhook delivery is verified with the fixtures' webhook-client secrets;
with --trust-signatures it is signed again with the secret of its recorded
subject, for recordings whose signatures were redacted.

With --expect FILE, the result is compared with FILE and every difference is
printed; --update writes the result to FILE instead. Lines with an "expect"
field are checked too. The exit status is 1 when anything differs, and 2 for
invalid flags and unreadable files.

Flags:
`

// replayOptions are the flags and arguments of "wfevents replay".
type replayOptions struct {
	source replaySource
	output string
	expect string
	update bool
}

// replaySource is the stream that replay and simulate read, and how they
// replay it: the flags and the STREAM argument they share.
type replaySource struct {
	stream          string
	fixturesDir     string
	as              string
	trustSignatures bool
	maxBodyBytes    int64
}

// register defines the source's flags on flags.
func (src *replaySource) register(flags *flag.FlagSet) {
	flags.StringVar(&src.fixturesDir, "fixtures", "", "`directory` seeding the cluster: cluster/*.yaml and tokens.csv (default: the fixtures built into the binary)")
	flags.StringVar(&src.as, "as", "", "`subject` to send every bearer-token request as, in place of the recorded subject")
	flags.BoolVar(&src.trustSignatures, "trust-signatures", false, "sign webhook deliveries again with the fixtures' secret of their recorded subject")
	flags.Int64Var(&src.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "body limit in `bytes`, as the recording server's --max-body-bytes")
}

// parse parses args with flags, which register defined, and takes the one
// STREAM argument. Flags may follow it.
func (src *replaySource) parse(flags *flag.FlagSet, args []string, stderr io.Writer) error {
	positional, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "%s: expected one STREAM argument, got %d: pass the recorded stream's file, or - for stdin\n", flags.Name(), len(positional))
		return errUsage
	}
	src.stream = positional[0]
	if src.maxBodyBytes < 1 {
		fmt.Fprintf(stderr, "%s: invalid --max-body-bytes %d: must be at least 1\n", flags.Name(), src.maxBodyBytes)
		return errUsage
	}
	return nil
}

// replay reads the stream and replays it on the fixtures.
func (src *replaySource) replay(ctx context.Context) ([]sim.Request, sim.Report, error) {
	requests, err := readStream(src.stream, src.maxBodyBytes)
	if err != nil {
		return nil, sim.Report{}, err
	}
	seed, err := loadFixtures(src.fixturesDir)
	if err != nil {
		return nil, sim.Report{}, err
	}

	replayer, err := sim.NewReplayer(ctx, sim.ReplayConfig{
		Fixtures:        seed,
		As:              src.as,
		TrustSignatures: src.trustSignatures,
		MaxBodyBytes:    src.maxBodyBytes,
	})
	if err != nil {
		return nil, sim.Report{}, err
	}
	defer replayer.Close()
	report := replayer.ReplayAll(ctx, requests)
	return requests, report, ctx.Err()
}

func parseReplayFlags(args []string, stderr io.Writer) (replayOptions, error) {
	var opts replayOptions
	flags := flag.NewFlagSet("wfevents replay", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		flags.PrintDefaults()
	}
	opts.source.register(flags)
	flags.StringVar(&opts.output, "output", "table", "report `format`: table or json")
	flags.StringVar(&opts.expect, "expect", "", "expected report `file` (JSON) to compare the result with")
	flags.BoolVar(&opts.update, "update", false, "write the result to the --expect file instead of comparing")

	if err := opts.source.parse(flags, args, stderr); err != nil {
		return opts, err
	}
	if opts.output != "table" && opts.output != "json" {
		fmt.Fprintf(stderr, "wfevents replay: invalid --output %q: use table or json\n", opts.output)
		return opts, errUsage
	}
	if opts.update && opts.expect == "" {
		fmt.Fprintln(stderr, "wfevents replay: --update needs --expect FILE to write to")
		return opts, errUsage
	}
	return opts, nil
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseReplayFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	requests, report, err := opts.source.replay(ctx)
	if err != nil {
		return err
	}

	if opts.output == "json" {
		err = sim.WriteReportJSON(stdout, report)
	} else {
		err = sim.WriteReportTable(stdout, report)
	}
	if err != nil {
		return err
	}

	notReplayed := 0
	for _, result := range report.Events {
		if result.Status == 0 {
			notReplayed++
		}
	}
	if notReplayed > 0 {
		fmt.Fprintf(stderr, "%d of %d requests were not replayed: each one's errors give the reason\n", notReplayed, len(report.Events))
	}

	differs := false
	for _, problem := range sim.CheckExpectations(requests, report) {
		fmt.Fprintln(stderr, problem)
		differs = true
	}
	if opts.update {
		if err := writeExpected(opts.expect, report); err != nil {
			return err
		}
		if differs {
			return errReplayDiffers
		}
		return nil
	}
	if opts.expect != "" {
		want, err := readExpected(opts.expect)
		if err != nil {
			return err
		}
		if diff := sim.DiffReports(want, report); diff != "" {
			fmt.Fprintf(stderr, "replay of %s differs from %s:\n%s", opts.source.stream, opts.expect, diff)
			fmt.Fprintln(stderr, "If the new result is right, run the same command with --update added.")
			differs = true
		}
	}
	if differs {
		return errReplayDiffers
	}
	return nil
}

// readStream reads a recorded stream from path, or from stdin for "-". Its
// lines may hold bodies of up to maxBodyBytes.
func readStream(path string, maxBodyBytes int64) ([]sim.Request, error) {
	// A body takes 4/3 of its size in base64, and the headers come on top.
	maxLine := max(sim.MaxLineBytes, int(maxBodyBytes/3*4+(1<<20)))

	input, name := io.Reader(os.Stdin), "stdin"
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open stream: %w: pass the path of a recorded stream (JSON Lines), or - for stdin", err)
		}
		defer file.Close()
		input, name = file, path
	}

	requests, err := sim.ReadStreamLimit(input, maxLine)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", name, err)
	}
	if len(requests) == 0 {
		return nil, fmt.Errorf("stream %s has no requests: record some with wfevents serve --record FILE, or import a HAR file with wfevents record --har", name)
	}
	return requests, nil
}

// loadFixtures loads the fixtures in dir, or the built-in ones for "".
func loadFixtures(dir string) (*fixtures.Set, error) {
	fsys := fixtures.Embedded()
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	seed, err := fixtures.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("load fixtures from %s: %w", fixturesSource(dir), err)
	}
	return seed, nil
}

func readExpected(path string) (sim.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sim.Report{}, fmt.Errorf("read expected result: %w: create it with --update", err)
	}
	report, err := sim.ReadReportJSON(bytes.NewReader(data))
	if err != nil {
		return sim.Report{}, fmt.Errorf("read expected result %s: %w", path, err)
	}
	return report, nil
}

func writeExpected(path string, report sim.Report) error {
	var buf bytes.Buffer
	if err := sim.WriteReportJSON(&buf, report); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write expected result: %w: check that the directory of --expect exists and is writable", err)
	}
	return nil
}
