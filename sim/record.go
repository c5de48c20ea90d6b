package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/wfevents/wfevents/metrics"
	"github.com/wfevents/wfevents/server"
)

// Defaults of RecorderConfig.
const (
	// DefaultBufferSize is the number of requests waiting to be written.
	DefaultBufferSize = 1024

	// DefaultBufferBytes is the lower bound of the body bytes waiting to
	// be written.
	DefaultBufferBytes = 64 << 20
)

// warnInterval is the minimum time between two warnings about dropped
// requests, or between two about failed writes.
const warnInterval = 10 * time.Second

// RecorderConfig configures a Recorder. Output is required.
type RecorderConfig struct {
	// Output receives the stream, one Write per line. Only the recorder's
	// goroutine writes to it, and Close closes it.
	Output io.WriteCloser

	// MaxBodyBytes is the maximum number of body bytes recorded per
	// request. Set it to the server's body limit. Zero means
	// server.DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// BufferSize is the number of requests that may wait to be written.
	// A request that finds the buffer full is dropped. Zero means
	// DefaultBufferSize.
	BufferSize int

	// BufferBytes bounds the body bytes of the requests waiting to be
	// written, so a stalled Output holds a bounded amount of memory. A
	// request whose body would pass it is dropped. Zero means
	// DefaultBufferBytes or 4 × MaxBodyBytes, whichever is larger.
	BufferBytes int64

	// Logger receives dropped requests and write errors, rate limited,
	// and a summary at Close. Nil discards.
	Logger *slog.Logger

	// Metrics counts written and dropped requests and write errors. Nil
	// counts nothing. One Metrics takes one Recorder, because the counters
	// are registered by name.
	Metrics *metrics.Metrics

	// Now returns the time a request is received. Nil means time.Now.
	Now func() time.Time
}

// Recorder is HTTP middleware that appends every request to a recorded
// stream: the request as received, with secrets redacted by Redact, the
// subject the server authenticated, the response status and the event ID.
//
// A request never waits for its recording to be written, and never fails
// because of it: the middleware hands each request to a buffer, and one
// goroutine writes them. A request that finds
// the buffer full is dropped and counted. A write error is logged and
// counted, and the client never sees it. Recorder is safe for concurrent
// use.
type Recorder struct {
	cfg      RecorderConfig
	requests chan Request
	done     chan struct{} // closed when the writer goroutine returns

	// mu guards closed and the sends on requests, so Close does not close
	// the channel while a request is being handed over.
	mu     sync.RWMutex
	closed bool

	closeOnce sync.Once
	closeErr  error

	bufferedBytes atomic.Int64
	written       atomic.Uint64
	dropped       atomic.Uint64
	failed        atomic.Uint64

	dropWarnings  rateLimiter
	writeWarnings rateLimiter // used by the writer goroutine only
}

// NewRecorder validates cfg, fills in its defaults and starts the goroutine
// that writes to cfg.Output. Call Close to stop it.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if cfg.Output == nil {
		return nil, errors.New("new recorder: RecorderConfig.Output is required")
	}
	for field, negative := range map[string]bool{
		"MaxBodyBytes": cfg.MaxBodyBytes < 0,
		"BufferSize":   cfg.BufferSize < 0,
		"BufferBytes":  cfg.BufferBytes < 0,
	} {
		if negative {
			return nil, fmt.Errorf("new recorder: RecorderConfig.%s must not be negative", field)
		}
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = server.DefaultMaxBodyBytes
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = max(DefaultBufferBytes, 4*cfg.MaxBodyBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	rec := &Recorder{
		cfg:      cfg,
		requests: make(chan Request, cfg.BufferSize),
		done:     make(chan struct{}),
	}
	cfg.Metrics.CounterFunc("wfevents_record_written_total", "Requests written to the recording.", nil,
		func() float64 { return float64(rec.Written()) })
	cfg.Metrics.CounterFunc("wfevents_record_dropped_total", "Requests not recorded, because the recording buffer was full or the recorder was closed.", nil,
		func() float64 { return float64(rec.Dropped()) })
	cfg.Metrics.CounterFunc("wfevents_record_write_errors_total", "Requests not recorded, because writing them to the recording failed.", nil,
		func() float64 { return float64(rec.WriteErrors()) })

	go rec.run()
	return rec, nil
}

// Written returns the number of requests written to Output.
func (rec *Recorder) Written() uint64 { return rec.written.Load() }

// Dropped returns the number of requests not recorded because the buffer
// was full or the recorder was closed.
func (rec *Recorder) Dropped() uint64 { return rec.dropped.Load() }

// WriteErrors returns the number of requests not recorded because writing
// them failed.
func (rec *Recorder) WriteErrors() uint64 { return rec.failed.Load() }

// Wrap returns a handler that runs next and records each request it serves.
// The request's body is copied as next reads it, up to MaxBodyBytes, so
// next decides how much of it is read, as it does without the recorder.
func (rec *Recorder) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := Request{
			Time:    rec.cfg.Now(),
			Method:  r.Method,
			Path:    r.URL.RequestURI(),
			Headers: r.Header.Clone(),
		}

		// The hook runs on this goroutine before next returns, so subject
		// needs no lock.
		var subject string
		ctx := server.WithAuthenticatedHook(r.Context(), func(s string) { subject = s })
		r = r.WithContext(ctx)
		var body *bodyCopy
		if r.Body != nil && r.Body != http.NoBody {
			body = &bodyCopy{source: r.Body, limit: rec.cfg.MaxBodyBytes}
			r.Body = body
		}
		// NOTE: http.MaxBytesReader cannot tell net/http through this
		// wrapper that a body was over its limit, so after a 413 net/http
		// discards up to 256 KiB of the rest to keep the connection, where
		// it would otherwise close it.
		status := &statusWriter{ResponseWriter: w}

		next.ServeHTTP(status, r)

		entry.Subject = subject
		entry.Status = status.code()
		entry.EventID = w.Header().Get("X-Event-Id")
		if body != nil {
			entry.Body, entry.BodyIncomplete = body.result()
		}
		rec.enqueue(entry)
	})
}

// enqueue hands entry to the writer goroutine, or drops it when the buffer
// is full or the recorder is closed. It never waits for the writer.
func (rec *Recorder) enqueue(entry Request) {
	size := int64(len(entry.Body))

	rec.mu.RLock()
	defer rec.mu.RUnlock()
	if rec.closed {
		rec.drop("recorder closed")
		return
	}
	if rec.bufferedBytes.Add(size) > rec.cfg.BufferBytes {
		rec.bufferedBytes.Add(-size)
		rec.drop("recording buffer full")
		return
	}
	select {
	case rec.requests <- entry:
	default:
		rec.bufferedBytes.Add(-size)
		rec.drop("recording buffer full")
	}
}

// drop counts a request that is not recorded, and warns at most once per
// warnInterval.
func (rec *Recorder) drop(reason string) {
	total := rec.dropped.Add(1)
	if suppressed, ok := rec.dropWarnings.allow(rec.cfg.Now()); ok {
		rec.cfg.Logger.Warn("request not recorded", "reason", reason, "dropped_total", total,
			"warnings_suppressed", suppressed, "buffer_size", rec.cfg.BufferSize, "buffer_bytes", rec.cfg.BufferBytes)
	}
}

// run writes the buffered requests until Close closes the channel.
func (rec *Recorder) run() {
	defer close(rec.done)
	stream := NewStreamWriter(rec.cfg.Output)
	for entry := range rec.requests {
		Redact(&entry)
		// NOTE: a write that fails part way, as on a full disk, leaves a
		// partial line that the next line continues, so ReadStream rejects
		// that line of the file.
		err := stream.Write(entry)
		rec.bufferedBytes.Add(-int64(len(entry.Body)))
		if err == nil {
			rec.written.Add(1)
			continue
		}
		total := rec.failed.Add(1)
		if suppressed, ok := rec.writeWarnings.allow(rec.cfg.Now()); ok {
			rec.cfg.Logger.Error("request not recorded: write failed", "error", err,
				"method", entry.Method, "event_id", entry.EventID, "write_errors_total", total, "errors_suppressed", suppressed)
		}
	}
}

// Close stops recording: it waits until the requests in the buffer are
// written, then closes Output. Requests that arrive after Close are
// dropped. Call it once the HTTP server has stopped. Close blocks while a
// write to Output is blocked. Calls after the first return its result.
func (rec *Recorder) Close() error {
	rec.closeOnce.Do(func() {
		rec.mu.Lock()
		rec.closed = true
		close(rec.requests)
		rec.mu.Unlock()

		<-rec.done
		if err := rec.cfg.Output.Close(); err != nil {
			rec.closeErr = fmt.Errorf("close recording: %w", err)
		}
		rec.cfg.Logger.Info("recording stopped", "written", rec.Written(), "dropped", rec.Dropped(), "write_errors", rec.WriteErrors())
	})
	return rec.closeErr
}

// bodyCopy passes a request body through to the handler and keeps a copy
// of what the handler reads, up to limit bytes.
type bodyCopy struct {
	source io.ReadCloser
	limit  int64
	copied []byte
	read   int64 // bytes the handler read, including those past limit
	eof    bool
}

func (b *bodyCopy) Read(p []byte) (int, error) {
	n, err := b.source.Read(p)
	if room := b.limit - int64(len(b.copied)); room > 0 {
		b.copied = append(b.copied, p[:min(int64(n), room)]...)
	}
	b.read += int64(n)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *bodyCopy) Close() error { return b.source.Close() }

// result returns the copied bytes, and whether they fall short of the body:
// the handler stopped before the end, or read past limit.
func (b *bodyCopy) result() ([]byte, bool) {
	return b.copied, !b.eof || b.read > int64(len(b.copied))
}

// statusWriter keeps the status of the response written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// A 1xx response is informational and followed by the final one.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code returns the status sent, which is 200 when the handler wrote
// nothing, as net/http then sends.
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// rateLimiter allows one event per warnInterval and counts the others.
type rateLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged, and returns how many
// were suppressed since the last one allowed.
func (l *rateLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < warnInterval {
		l.suppressed++
		return 0, false
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	return suppressed, true
}

// OpenRotatingFile returns a writer that appends to the file at path, and,
// before a write would take the file past maxSizeMiB mebibytes, renames it
// to name-<UTC time>.ext and starts a new one. Only the newest maxBackups
// renamed files are kept, and 0 keeps them all. It creates the file with
// mode 0600 if it does not exist, and fails at once if it cannot be opened.
//
// A single write larger than maxSizeMiB fails. The rotation is done by
// gopkg.in/natefinch/lumberjack.v2.
func OpenRotatingFile(path string, maxSizeMiB, maxBackups int) (io.WriteCloser, error) {
	if maxSizeMiB <= 0 {
		return nil, fmt.Errorf("invalid maximum size %d MiB for %s: must be positive", maxSizeMiB, path)
	}
	if maxBackups < 0 {
		return nil, fmt.Errorf("invalid maximum backups %d for %s: must not be negative", maxBackups, path)
	}

	// lumberjack opens the file at the first write, and would create
	// missing directories. Open it now, so a wrong path fails at start.
	file, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	// A run that stopped mid-write, as on a crash or a full disk, left a
	// partial last line. Ending it keeps the next run's lines whole, so
	// only that one line fails to read.
	if err := endPartialLine(file); err != nil {
		file.Close()
		return nil, fmt.Errorf("end the partial last line of recording %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return nil, fmt.Errorf("close recording %s: %w", path, err)
	}
	return &lumberjack.Logger{Filename: path, MaxSize: maxSizeMiB, MaxBackups: maxBackups}, nil
}

// endPartialLine writes a newline at the end of file unless the file is
// empty or already ends with one.
func endPartialLine(file *os.File) error {
	info, err := file.Stat()
	if err != nil || info.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := file.ReadAt(last, info.Size()-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	_, err = file.Write([]byte{'\n'})
	return err
}
