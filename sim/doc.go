// Package sim records webhook traffic, replays it on fixtures, and simulates
// the event pipeline under it.
//
// A recorded stream is JSON Lines: one Request per line, with its receive
// time, method, path, headers and byte-exact body. A Recorder writes one
// from a running server, and ReadHAR converts a HAR 1.2 capture.
//
// A Replayer sends each request through the server's real handler, matcher
// and workers over client-go's fake dynamic client seeded from fixtures, one
// at a time, and reports what each created. DiffReports compares that with
// an expected report, so CI can pin what a set of captured webhooks does.
//
// Simulate runs the pipeline's queueing on a virtual clock, far faster than
// real time. From the recorded arrival times, a model of the API server's
// create latency, a pipeline size and a worker count, it computes the 503s,
// the pipeline depth over time and the delay from receipt to Workflow
// creation.
package sim
