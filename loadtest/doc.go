// Package loadtest measures the events endpoint under load with the vegeta
// library. It runs one of three scenarios against a server at a URL, or
// against wfevents started in this process on an embedded cluster:
//
//   - limit holds the workers and sends more events than the pipeline
//     holds. It checks that exactly the pipeline size is accepted and the
//     rest get 503 with Retry-After. It then releases the workers and checks
//     that every accepted event created exactly one Workflow. It needs the
//     in-process server, because only there can it hold the workers.
//   - capacity raises the rate step by step and reports the highest rate
//     with under 0.1% 503s and p99 under a bound.
//   - rate sends at a fixed rate and reports latency percentiles, status
//     codes and throughput.
//
// Every run is bounded in time and in requests. The in-process server
// listens on 127.0.0.1 only, and can add a delay to each Workflow create to
// stand in for a real API server's latency. Its runs also sample the memory
// of this process, which holds the load generator as well as the server.
//
// "wfevents load" is the command line of this package, and
// docs/benchmarks.md records its results.
package loadtest
