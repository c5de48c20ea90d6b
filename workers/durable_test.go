package workers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/wfevents/wfevents/model"
)

// openTestStore opens a store in a new temporary directory, or in dir when
// given, and closes it when the test ends unless the test did.
func openTestStore(t testing.TB, dir ...string) *BoltStore {
	t.Helper()
	storeDir := t.TempDir()
	if len(dir) > 0 {
		storeDir = dir[0]
	}
	store, err := OpenStore(storeDir, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// storedEvent returns event(i) received i seconds after a fixed time, with
// a payload that records i.
func storedEvent(i int) model.Event {
	ev := event(i)
	ev.ReceivedAt = time.Date(2026, 7, 1, 12, 0, i, 0, time.UTC)
	ev.Payload = map[string]any{"n": int64(i)}
	return ev
}

// pendingIDs returns the IDs of the events in store, in the order Pending
// returns them.
func pendingIDs(t testing.TB, store Store) []string {
	t.Helper()
	pending, err := store.Pending()
	require.NoError(t, err)
	ids := make([]string, len(pending))
	for i, ev := range pending {
		ids[i] = ev.ID
	}
	return ids
}

func TestStorePutPendingDelete(t *testing.T) {
	store := openTestStore(t)
	for i := range 3 {
		require.NoError(t, store.Put(storedEvent(i)))
	}
	require.Equal(t, []string{"ev-000", "ev-001", "ev-002"}, pendingIDs(t, store))

	require.NoError(t, store.Delete(storedEvent(1)))
	assert.Equal(t, []string{"ev-000", "ev-002"}, pendingIDs(t, store))

	assert.NoError(t, store.Delete(storedEvent(1)), "deleting an event that is not stored")
	assert.NoError(t, store.Delete(storedEvent(7)), "deleting an event that never was stored")
	assert.Equal(t, []string{"ev-000", "ev-002"}, pendingIDs(t, store))
}

func TestStorePendingInReceiveOrder(t *testing.T) {
	store := openTestStore(t)
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	events := []model.Event{
		{ID: "c", ReceivedAt: at.Add(time.Nanosecond)},
		{ID: "b", ReceivedAt: at},
		{ID: "z", ReceivedAt: at.Add(-time.Hour)},
		{ID: "a", ReceivedAt: at},
		{ID: "zero"},
	}
	for _, ev := range events {
		require.NoError(t, store.Put(ev))
	}

	assert.Equal(t, []string{"zero", "z", "a", "b", "c"}, pendingIDs(t, store))
}

func TestStoreKeepsEventExactAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	store := openTestStore(t, dir)
	ev := model.Event{
		ID:            "ev-exact",
		Namespace:     "argo",
		Discriminator: "github",
		Payload: map[string]any{
			"max":      int64(math.MaxInt64),
			"min":      int64(math.MinInt64),
			"big":      int64(9007199254740993),
			"integral": 2.0,
			"ratio":    0.1,
			"nested":   []any{nil, true, "text", map[string]any{}},
		},
		Caller: model.Identity{
			Subject:    "system:serviceaccount:argo:github",
			UID:        "uid-1",
			Groups:     []string{"system:serviceaccounts"},
			Namespaces: []string{"argo"},
		},
		ReceivedAt: time.Date(2026, 7, 1, 12, 0, 0, 123456789, time.UTC),
	}
	require.NoError(t, store.Put(ev))
	require.NoError(t, store.Close())

	reopened := openTestStore(t, dir)
	pending, err := reopened.Pending()

	require.NoError(t, err)
	require.Len(t, pending, 1)
	got := pending[0]
	assert.Equal(t, ev.Payload, got.Payload)
	assert.IsType(t, int64(0), got.Payload.(map[string]any)["max"])
	assert.IsType(t, float64(0), got.Payload.(map[string]any)["integral"])
	assert.Equal(t, ev.Caller, got.Caller)
	assert.Equal(t, ev.Namespace, got.Namespace)
	assert.Equal(t, ev.Discriminator, got.Discriminator)
	assert.True(t, ev.ReceivedAt.Equal(got.ReceivedAt), "ReceivedAt %v, want %v", got.ReceivedAt, ev.ReceivedAt)

	// The replayed event has the same key, so deleting it works.
	require.NoError(t, reopened.Delete(got))
	assert.Empty(t, pendingIDs(t, reopened))
}

func TestStoreKeepsOnlyExpressionHeaders(t *testing.T) {
	dir := t.TempDir()
	store := openTestStore(t, dir)
	ev := storedEvent(0)
	ev.Headers = map[string][]string{
		"X-Github-Event":      {"push"},
		"X-Argo-E2e":          {"true"},
		"Authorization":       {"Bearer secret-token-value"},
		"X-Hub-Signature-256": {"sha256=secret-signature-value"},
		"X-Gitlab-Token":      {"secret-gitlab-value"},
		"Content-Type":        {"application/json"},
	}
	require.NoError(t, store.Put(ev))

	pending, err := store.Pending()
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, map[string][]string{"x-github-event": {"push"}, "x-argo-e2e": {"true"}}, pending[0].Headers)

	require.NoError(t, store.Close())
	file, err := os.ReadFile(filepath.Join(dir, StoreFileName))
	require.NoError(t, err)
	for _, secret := range []string{"secret-token-value", "secret-signature-value", "secret-gitlab-value"} {
		assert.NotContains(t, string(file), secret, "the file contains a secret header value")
	}
}

func TestStoreFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	openTestStore(t, dir)

	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "directory mode")
	info, err = os.Stat(filepath.Join(dir, StoreFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "file mode")
}

func TestOpenStoreCorruptFile(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t testing.TB, path string)
	}{
		{
			name: "not a bbolt file",
			corrupt: func(t testing.TB, path string) {
				require.NoError(t, os.WriteFile(path, []byte("this is not a database, just text that is long enough to read\n"), 0o600))
			},
		},
		{
			name: "zeroed meta pages",
			corrupt: func(t testing.TB, path string) {
				overwrite(t, path, 0, make([]byte, 2*os.Getpagesize()))
			},
		},
		{
			name: "overwritten data pages",
			corrupt: func(t testing.TB, path string) {
				garbage := make([]byte, 2*os.Getpagesize())
				for i := range garbage {
					garbage[i] = byte(i*7 + 3)
				}
				overwrite(t, path, int64(2*os.Getpagesize()), garbage)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StoreFileName)
			writeStoreWithEvents(t, dir, 20)
			tc.corrupt(t, path)

			store, err := OpenStore(dir, testLogger(t))
			if err == nil {
				// Some damage only shows when the records are read.
				_, err = store.Pending()
				require.NoError(t, store.Close())
			}

			require.Error(t, err)
			t.Logf("error: %v", err)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), "corrupt")
			assert.Contains(t, err.Error(), "move the file aside")
		})
	}
}

// writeStoreWithEvents creates a store in dir holding n events and closes
// it.
func writeStoreWithEvents(t testing.TB, dir string, n int) {
	t.Helper()
	store, err := OpenStore(dir, testLogger(t))
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, store.Put(storedEvent(i)))
	}
	require.NoError(t, store.Close())
}

// overwrite writes data into the file at path at offset.
func overwrite(t testing.TB, path string, offset int64, data []byte) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = file.WriteAt(data, offset)
	require.NoError(t, err)
	require.NoError(t, file.Close())
}

func TestStoreUndecodableRecord(t *testing.T) {
	store := openTestStore(t)
	require.NoError(t, store.Put(storedEvent(0)))
	require.NoError(t, store.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(eventsBucket).Put([]byte("broken-key"), []byte(`{"format": 99}`))
	}))

	_, err := store.Pending()

	require.Error(t, err)
	assert.Contains(t, err.Error(), store.Path())
	assert.Contains(t, err.Error(), `record "broken-key"`)
	assert.Contains(t, err.Error(), "unsupported format 99")
}

func TestOpenStoreLockedFailsFast(t *testing.T) {
	dir := t.TempDir()
	openTestStore(t, dir)

	start := time.Now()
	second, err := OpenStore(dir, testLogger(t))
	waited := time.Since(start)

	require.Error(t, err)
	t.Logf("error after %s: %v", waited, err)
	assert.Nil(t, second)
	assert.Contains(t, err.Error(), filepath.Join(dir, StoreFileName))
	assert.Contains(t, err.Error(), "locked by another process")
	assert.Less(t, waited, storeLockTimeout+2*time.Second, "OpenStore waited too long for the lock")
}

func TestOpenStoreDirectoryIsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	_, err := OpenStore(file, testLogger(t))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "create event queue directory "+file)
}

// recordingProcessor records the order of Process calls and blocks each
// call until release is closed or the context is done.
type recordingProcessor struct {
	release chan struct{}

	mu    sync.Mutex
	order []string
}

func newRecordingProcessor() *recordingProcessor {
	return &recordingProcessor{release: make(chan struct{})}
}

func (r *recordingProcessor) Process(ctx context.Context, ev model.Event) {
	r.mu.Lock()
	r.order = append(r.order, ev.ID)
	r.mu.Unlock()
	select {
	case <-r.release:
	case <-ctx.Done():
	}
}

func (r *recordingProcessor) Order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// newDurablePipeline returns a pipeline over store that logs to the test
// output and to logs, not yet started.
func newDurablePipeline(t testing.TB, cfg Config, store Store, proc Processor, logs *syncBuffer) *Pipeline {
	t.Helper()
	cfg.Store = store
	cfg.Logger = testLogger(t, logs)
	p, err := NewPipeline(cfg, proc)
	require.NoError(t, err)
	return p
}

// startDurable starts p and, when the test ends, shuts it down unless the
// test did and waits for its workers.
func startDurable(t testing.TB, p *Pipeline) {
	t.Helper()
	p.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = p.Shutdown(ctx)
		waitClosed(t, p.done, "workers to return")
	})
}

func TestDurablePipelineReplaysBeforeNewEvents(t *testing.T) {
	store := openTestStore(t)
	for _, i := range []int{2, 0, 1} {
		require.NoError(t, store.Put(storedEvent(i)))
	}
	proc := newRecordingProcessor()
	close(proc.release)
	p := newDurablePipeline(t, Config{Size: 8, Workers: 1}, store, proc, &syncBuffer{})
	require.Equal(t, 3, p.Depth(), "stored events hold slots before Start")

	require.NoError(t, p.Enqueue(storedEvent(3)))
	startDurable(t, p)
	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	assert.Equal(t, []string{"ev-000", "ev-001", "ev-002", "ev-003"}, proc.Order(), "stored events in receive order, then the new one")
	assert.Empty(t, pendingIDs(t, store), "processed events must be deleted")
}

func TestDurablePipelineReplaysBacklogLargerThanSize(t *testing.T) {
	store := openTestStore(t)
	const stored = 10
	var want []string
	for i := range stored {
		require.NoError(t, store.Put(storedEvent(i)))
		want = append(want, storedEvent(i).ID)
	}
	proc := newRecordingProcessor()
	var logs syncBuffer
	p := newDurablePipeline(t, Config{Size: 3, Workers: 1}, store, proc, &logs)
	startDurable(t, p)

	// While stored events wait for slots, new events are rejected as full.
	require.Eventually(t, func() bool { return len(proc.Order()) == 1 }, waitTimeout, time.Millisecond)
	assert.False(t, p.Accepting(), "accepting while stored events wait")
	assert.ErrorIs(t, p.Enqueue(storedEvent(100)), ErrFull)
	assert.Equal(t, 3, p.Depth())

	close(proc.release)
	require.Eventually(t, p.Accepting, waitTimeout, time.Millisecond, "intake never opened after the replay")
	require.Eventually(t, func() bool { return p.Depth() == 0 }, waitTimeout, time.Millisecond)
	require.NoError(t, p.Enqueue(storedEvent(stored)))
	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	assert.Equal(t, append(want, storedEvent(stored).ID), proc.Order())
	assert.Empty(t, pendingIDs(t, store))
	assert.Contains(t, logs.String(), "events=10 queued=3 backlog=7")
}

func TestDurablePipelineDeletesProcessed(t *testing.T) {
	store := openTestStore(t)
	proc := newGatedProcessor()
	p := newDurablePipeline(t, Config{Size: 4, Workers: 2}, store, proc, &syncBuffer{})
	startDurable(t, p)
	for i := range 3 {
		require.NoError(t, p.Enqueue(storedEvent(i)))
	}
	require.Equal(t, []string{"ev-000", "ev-001", "ev-002"}, pendingIDs(t, store), "accepted events must be stored before Enqueue returns")

	close(proc.release)
	require.Eventually(t, func() bool { return p.Depth() == 0 }, waitTimeout, time.Millisecond)

	assert.Empty(t, pendingIDs(t, store))
	assert.Len(t, proc.Calls(), 3)
}

func TestDurablePipelineShutdownKeepsLeftForNextStart(t *testing.T) {
	store := openTestStore(t)
	proc := newGatedProcessor()
	var logs syncBuffer
	p := newDurablePipeline(t, Config{Size: 4, Workers: 1}, store, proc, &logs)
	startDurable(t, p)
	for i := range 3 {
		require.NoError(t, p.Enqueue(storedEvent(i)))
	}
	// One event is in flight and two are queued.
	require.Eventually(t, func() bool { return len(proc.Calls()) == 1 }, waitTimeout, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	left, err := p.Shutdown(ctx)
	require.ErrorIs(t, err, context.Canceled)
	waitClosed(t, p.done, "workers to return after the timeout")

	assert.Equal(t, 3, left)
	assert.ErrorIs(t, p.Enqueue(storedEvent(9)), ErrShuttingDown)
	assert.Equal(t, []string{"ev-000", "ev-001", "ev-002"}, pendingIDs(t, store), "the cancelled and the queued events stay stored")
	assert.Contains(t, logs.String(), "left_on_disk=3")
	assert.NotContains(t, logs.String(), "event dropped unprocessed")

	// The next pipeline on the same store processes each of them once.
	next := newGatedProcessor()
	close(next.release)
	restarted := newDurablePipeline(t, Config{Size: 4, Workers: 2}, store, next, &syncBuffer{})
	startDurable(t, restarted)
	left, err = shutdown(t, restarted)

	require.NoError(t, err)
	assert.Equal(t, 0, left)
	assert.Equal(t, map[string]int{"ev-000": 1, "ev-001": 1, "ev-002": 1}, next.Calls())
	assert.Empty(t, pendingIDs(t, store))
}

func TestDurablePipelineShutdownDuringReplay(t *testing.T) {
	store := openTestStore(t)
	for i := range 6 {
		require.NoError(t, store.Put(storedEvent(i)))
	}
	proc := newGatedProcessor()
	var logs syncBuffer
	p := newDurablePipeline(t, Config{Size: 2, Workers: 1}, store, proc, &logs)
	startDurable(t, p)
	require.Eventually(t, func() bool { return len(proc.Calls()) == 1 }, waitTimeout, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	left, err := p.Shutdown(ctx)

	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 6, left, "two held and four never queued")
	waitClosed(t, p.done, "workers to return after the timeout")
	assert.Len(t, pendingIDs(t, store), 6)
	assert.Contains(t, logs.String(), "left_on_disk=6")
}

func TestDurablePipelineShutdownBeforeStart(t *testing.T) {
	store := openTestStore(t)
	for i := range 5 {
		require.NoError(t, store.Put(storedEvent(i)))
	}
	var logs syncBuffer
	p := newDurablePipeline(t, Config{Size: 2, Workers: 1}, store, newGatedProcessor(), &logs)

	left, err := shutdown(t, p)

	require.NoError(t, err)
	assert.Equal(t, 5, left)
	assert.Len(t, pendingIDs(t, store), 5)
	assert.Contains(t, logs.String(), "left_on_disk=5")
}

// countingStore is a Store in memory that counts Put calls and fails them
// with putErr when it is set.
type countingStore struct {
	putErr error

	mu     sync.Mutex
	puts   int
	events map[string]model.Event
}

func newCountingStore() *countingStore {
	return &countingStore{events: make(map[string]model.Event)}
}

func (s *countingStore) Put(ev model.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.putErr != nil {
		return s.putErr
	}
	s.events[ev.ID] = ev
	return nil
}

func (s *countingStore) Delete(ev model.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.events, ev.ID)
	return nil
}

func (s *countingStore) Pending() ([]model.Event, error) { return nil, nil }

func (s *countingStore) Close() error { return nil }

func (s *countingStore) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

func TestDurablePipelineFullWritesNothing(t *testing.T) {
	store := newCountingStore()
	proc := newGatedProcessor()
	p := newDurablePipeline(t, Config{Size: 2, Workers: 1}, store, proc, &syncBuffer{})
	startDurable(t, p)
	require.NoError(t, p.Enqueue(storedEvent(0)))
	require.NoError(t, p.Enqueue(storedEvent(1)))

	err := p.Enqueue(storedEvent(2))

	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, model.CodeUnavailable, model.ErrorCode(err))
	assert.Equal(t, 2, store.Puts(), "a rejected event must not be written")
	close(proc.release)
}

func TestDurablePipelinePutFailure(t *testing.T) {
	store := newCountingStore()
	store.putErr = errors.New("disk full")
	var logs syncBuffer
	proc := newGatedProcessor()
	p := newDurablePipeline(t, Config{Size: 2, Workers: 1}, store, proc, &logs)
	startDurable(t, p)

	err := p.Enqueue(storedEvent(0))

	require.Error(t, err)
	assert.Equal(t, model.CodeUnavailable, model.ErrorCode(err))
	assert.Equal(t, "event could not be stored; retry later", model.ErrorMessage(err))
	assert.ErrorContains(t, err, "disk full")
	assert.Equal(t, 0, p.Depth(), "a failed write must release its slot")
	assert.Contains(t, logs.String(), `msg="event not stored in the event queue" event_id=ev-000`)
	assert.Empty(t, proc.Calls())
	close(proc.release)
}

func TestDurablePipelineDeletesPanickedEvent(t *testing.T) {
	store := openTestStore(t)
	proc := ProcessorFunc(func(ctx context.Context, ev model.Event) { panic("bad event") })
	p := newDurablePipeline(t, Config{Size: 1, Workers: 1}, store, proc, &syncBuffer{})
	startDurable(t, p)

	require.NoError(t, p.Enqueue(storedEvent(0)))
	require.Eventually(t, func() bool { return p.Depth() == 0 }, waitTimeout, time.Millisecond)

	assert.Empty(t, pendingIDs(t, store), "a panicking event would panic again on every start")
}

// benchmarkEnqueue measures accepted events per second with producers
// goroutines enqueueing at once into a pipeline whose workers do nothing.
// A producer that finds the pipeline full yields and tries again, so the
// rate includes the workers' share (the Delete calls in durable mode).
func benchmarkEnqueue(b *testing.B, store Store) {
	for _, producers := range []int{2, 16, 64} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			p, err := NewPipeline(Config{Size: 1024, Workers: 4, Store: store}, ProcessorFunc(func(context.Context, model.Event) {}))
			require.NoError(b, err)
			p.Start(context.Background())
			b.Cleanup(func() {
				_, err := shutdown(b, p)
				require.NoError(b, err)
			})

			var sequence atomic.Int64
			var full atomic.Int64
			received := time.Now()
			b.SetParallelism(max(1, producers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ev := model.Event{
						ID:         fmt.Sprintf("bench-%d", sequence.Add(1)),
						Namespace:  "argo",
						Payload:    map[string]any{"message": "hello events"},
						ReceivedAt: received,
					}
					for {
						err := p.Enqueue(ev)
						if err == nil {
							break
						}
						if !errors.Is(err, ErrFull) {
							b.Fatal(err)
						}
						full.Add(1)
						runtime.Gosched()
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
		})
	}
}

func BenchmarkEnqueueMemory(b *testing.B) {
	benchmarkEnqueue(b, nil)
}

func BenchmarkEnqueueDurable(b *testing.B) {
	benchmarkEnqueue(b, openTestStore(b))
}
