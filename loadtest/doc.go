// Package loadtest measures the events endpoint under load with the vegeta
// library: the pipeline limit, the 503 behaviour when it is full, and latency.
//
// TODO: the package holds only this documentation so far. No scenario is
// built yet.
package loadtest
