// Command wfevents turns webhooks into Argo Workflows.
//
// Usage:
//
//	wfevents serve [flags]
//	wfevents check [flags] FILE|DIR ...
//	wfevents conformance [flags]
//	wfevents load SCENARIO [flags]
//	wfevents record --har FILE [flags]
//	wfevents replay [flags] STREAM
//	wfevents simulate [flags] STREAM
//
// Run "wfevents COMMAND -h" for the flags of each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

func main() {
	// The first SIGINT or SIGTERM starts a graceful shutdown. A second one
	// kills the process, because NotifyContext stops catching signals once
	// its context is done.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// client-go logs through klog, so its lines go to the server's handler.
	installProcessLogger = func(logger *slog.Logger) {
		klog.SetSlogLogger(logger)
		slog.SetDefault(logger)
	}

	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		// check and replay have printed their findings, and exit 1 like
		// other linters and test tools.
		if errors.Is(err, errCheckFailed) || errors.Is(err, errReplayDiffers) {
			os.Exit(1)
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(os.Stderr, "wfevents: %v\n", err)
		}
		os.Exit(2)
	}
}

// installProcessLogger, when set, makes logger the process-wide logger. Only
// main sets it, because klog's logger is global and tests run several
// servers in one process.
var installProcessLogger func(logger *slog.Logger)

// errUsage marks an error whose explanation was already printed.
var errUsage = errors.New("usage")

const usage = `wfevents turns webhooks into Argo Workflows.

Usage:
  wfevents serve [flags]            start the events server
  wfevents check [flags] PATH ...   check templates and bindings in files, or try an event on them
  wfevents conformance [flags]      run the contract's checks against a running server
  wfevents load SCENARIO [flags]    measure the events endpoint under load: limit, capacity or rate
  wfevents replay [flags] STREAM    replay recorded requests on fixtures and report the Workflows created
  wfevents simulate [flags] STREAM  predict 503s, pipeline depth and delays for a recorded stream
  wfevents record --har FILE        turn a HAR file into a recorded stream of requests

Run "wfevents COMMAND -h" for the flags of each.
`

// run executes one subcommand and returns when it is done or ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}

	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "conformance":
		return runConformance(ctx, args[1:], stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args[1:], stdout, stderr)
	case "record":
		return runRecord(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "wfevents: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// parseFlags parses args into flags and rejects positional arguments, which
// serve, load and conformance do not take. A request for help returns
// flag.ErrHelp; any other problem is printed with hint and returns errUsage.
func parseFlags(flags *flag.FlagSet, args []string, stderr io.Writer, hint string) error {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q%s\n", flags.Name(), flags.Arg(0), hint)
		return errUsage
	}
	return nil
}
