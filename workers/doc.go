// Package workers processes admitted events in the background, so the HTTP
// handler can respond as soon as an event is accepted.
//
// A [Pipeline] sits between admission and the workers. It holds at most a
// fixed number of events, counting both the queued ones and the ones a
// worker is processing. When it is full, [Pipeline.Enqueue] rejects the next
// event at once with a CodeUnavailable error instead of blocking, so an
// overload turns into fast retryable rejections rather than growing memory
// and latency.
//
// A [Processor] is the sync function: it handles one event from start to
// finish on a worker goroutine. It takes the event and a context, so a test
// can call it directly without a pipeline.
package workers
