// Command streamgen writes the recorded webhook streams under
// fixtures/streams, which replay tests run against the resources in
// fixtures/cluster.
//
// Each stream is JSON Lines of sim.Request, as a recorder would write it:
// real webhook bodies from fixtures/webhooks, compacted as senders send them,
// with the headers each provider sends and signatures computed with the
// secrets of fixtures/cluster/webhook-clients.yaml. The output is the same on
// every run: times start at a fixed instant, and delivery and event IDs are
// name-based UUIDs. Run it from the repository root after changing the
// generator or the fixtures:
//
//	go run ./sim/internal/streamgen -out fixtures/streams
//
// A test fails when the checked-in streams differ from the output.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/wfevents/wfevents/sim"
)

func main() {
	err := run(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamgen:", err)
		os.Exit(1)
	}
}

// run parses the flags and writes the streams.
func run(args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("streamgen", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("out", "fixtures/streams", "`directory` to write the .jsonl streams to, created if missing")
	fixturesDir := flags.String("fixtures", "fixtures", "fixtures `directory` to read cluster/webhook-clients.yaml and the bodies under webhooks/ from")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: streamgen takes only flags", flags.Arg(0))
	}

	in, err := loadInputs(*fixturesDir)
	if err != nil {
		return err
	}
	streams, err := generate(in)
	if err != nil {
		return err
	}
	return writeStreams(*out, streams)
}

// writeStreams writes each stream to dir as NAME.jsonl.
func writeStreams(dir string, streams map[string][]sim.Request) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(streams)) {
		var buf bytes.Buffer
		if err := sim.WriteStream(&buf, streams[name]); err != nil {
			return fmt.Errorf("encode stream %s: %w", name, err)
		}
		path := filepath.Join(dir, name+".jsonl")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write stream: %w", err)
		}
	}
	return nil
}
