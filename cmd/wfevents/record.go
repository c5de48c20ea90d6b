package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/wfevents/wfevents/sim"
)

const recordUsage = `Usage: wfevents record --har FILE [-o OUT] [flags]

Record turns a HAR file, as browsers and proxies export captured traffic,
into a recorded stream: JSON Lines, one request per line, in the format
that "wfevents serve --record" writes. It keeps the requests to
/api/v1/events/ unless --all-paths is given, and redacts credentials in
headers and query parameters. Bodies are kept byte for byte.

Flags:
`

// recordOptions are the flags of "wfevents record".
type recordOptions struct {
	har      string
	output   string
	allPaths bool
}

func parseRecordFlags(args []string, stderr io.Writer) (recordOptions, error) {
	var opts recordOptions
	flags := flag.NewFlagSet("wfevents record", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), recordUsage)
		flags.PrintDefaults()
	}

	flags.StringVar(&opts.har, "har", "", "HAR `file` to import")
	flags.StringVar(&opts.output, "o", "", "write the stream to `file`, replacing it, instead of to standard output")
	flags.BoolVar(&opts.allPaths, "all-paths", false, "keep every request, not only those to /api/v1/events/")

	if err := parseFlags(flags, args, stderr, ": name the HAR file with --har"); err != nil {
		return opts, err
	}
	if opts.har == "" {
		fmt.Fprintln(stderr, "wfevents record: missing --har: name the HAR file to import, as in wfevents record --har capture.har -o stream.jsonl")
		return opts, errUsage
	}
	return opts, nil
}

// runRecord reads the HAR file of --har and writes its requests as a
// recorded stream to -o or stdout. It reports the count on stderr.
func runRecord(_ context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseRecordFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkOutputIsNotHAR(opts.output, opts.har); err != nil {
		return err
	}

	// Read the whole HAR file first, so an invalid one writes nothing.
	file, err := os.Open(opts.har)
	if err != nil {
		return fmt.Errorf("open --har file: %w", err)
	}
	requests, entries, err := sim.ReadHAR(file, sim.HAROptions{AllPaths: opts.allPaths})
	file.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.har, err)
	}

	destination := "standard output"
	if opts.output == "" {
		err = writeStream(stdout, requests)
	} else {
		destination = opts.output
		err = writeStreamFile(opts.output, requests)
	}
	if err != nil {
		return err
	}

	noun := "requests"
	if len(requests) == 1 {
		noun = "request"
	}
	fmt.Fprintf(stderr, "wfevents record: wrote %d %s from %s to %s\n", len(requests), noun, opts.har, destination)
	switch {
	case entries == 0:
		fmt.Fprintf(stderr, "wfevents record: %s has no entries: export the HAR after the browser or proxy has captured the requests\n", opts.har)
	case len(requests) == 0:
		fmt.Fprintln(stderr, "wfevents record: no entry is a request to /api/v1/events/: pass --all-paths to keep every request")
	}
	return nil
}

// checkOutputIsNotHAR returns an error when output, the -o file, is the HAR
// file, by path or as the same file under another name, because writing
// the stream would replace the HAR file. An empty output is standard
// output.
func checkOutputIsNotHAR(output, har string) error {
	if output == "" {
		return nil
	}
	same := filepath.Clean(output) == filepath.Clean(har)
	if !same {
		outputInfo, outputErr := os.Stat(output)
		harInfo, harErr := os.Stat(har)
		same = outputErr == nil && harErr == nil && os.SameFile(outputInfo, harInfo)
	}
	if same {
		return fmt.Errorf("invalid -o %q: it is the --har file, and writing the stream would replace it: write the stream to another file, such as stream.jsonl", output)
	}
	return nil
}

// writeStream writes requests to w as a recorded stream, buffered.
func writeStream(w io.Writer, requests []sim.Request) error {
	buffered := bufio.NewWriter(w)
	if err := sim.WriteStream(buffered, requests); err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	if err := buffered.Flush(); err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	return nil
}

// writeStreamFile writes requests to the file at path, replacing it. The
// file is created with mode 0600, because bodies are not redacted.
func writeStreamFile(path string, requests []sim.Request) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open -o file: %w", err)
	}
	if err := writeStream(file, requests); err != nil {
		file.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
