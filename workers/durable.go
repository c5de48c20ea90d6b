package workers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
)

// Store keeps accepted events on disk until they are processed, so that a
// restart, even after a crash, replays them. A [Pipeline] with a Store puts
// each event before Enqueue returns and deletes it once Process returns.
// Implementations must be safe for concurrent use.
type Store interface {
	// Put stores ev and returns once ev survives a crash of the process
	// or the machine.
	Put(ev model.Event) error

	// Delete removes ev. Removing an event that is not stored is not an
	// error.
	Delete(ev model.Event) error

	// Pending returns the stored events in receive order: by ReceivedAt,
	// then by ID.
	Pending() ([]model.Event, error)

	// Close releases the store. No method may be called after it.
	Close() error
}

// StoreFileName is the name of the bbolt file that [OpenStore] keeps in its
// directory.
const StoreFileName = "events.db"

// storeLockTimeout bounds the wait for the file lock, which bbolt takes so
// that two processes never write the same file. A second server started on
// the same directory fails after it instead of waiting forever.
const storeLockTimeout = time.Second

// storeBatchDelay is how long a Put or Delete waits for others to join its
// transaction, bbolt's DB.MaxBatchDelay. bbolt's default of 10 ms is
// longer than a commit takes on a local SSD, so a lone event would wait for
// nothing. Under load a commit still gathers every call that arrived while
// the previous one was syncing, however short this delay.
const storeBatchDelay = time.Millisecond

// eventsBucket is the bbolt bucket of stored events. Each key is
// ReceivedAt in Unix nanoseconds as 8 big-endian bytes followed by the
// event ID, so a cursor walks the events in receive order.
var eventsBucket = []byte("events")

// BoltStore is a [Store] in a bbolt file. Each Put and Delete commits with
// fsync, and concurrent calls share one commit. The file grows to hold the
// most events ever stored at once and does not shrink, because bbolt reuses
// freed pages instead of returning them.
type BoltStore struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

// OpenStore opens the store in dir, creating dir and the file StoreFileName
// in it if they do not exist, and checks the file's consistency. It returns
// an error naming the file when another process has it locked (after
// waiting one second for the lock) and when the file is corrupt. A nil logger
// discards.
func OpenStore(dir string, logger *slog.Logger) (*BoltStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dir == "" {
		return nil, errors.New("open event queue: the directory name is empty")
	}
	// Events contain payloads and caller identities, so only the owner may
	// read them.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create event queue directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, StoreFileName)

	db, err := openBolt(path)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open event queue %s: the file is locked by another process (waited %s): stop the other wfevents that uses this directory, or give this one another directory", path, storeLockTimeout)
	case isCorrupt(err):
		return nil, corruptError(path, err)
	case err != nil:
		return nil, fmt.Errorf("open event queue %s: %w: check that the directory is writable by this user", path, err)
	}

	s := &BoltStore{db: db, path: path, log: logger}
	db.MaxBatchDelay = storeBatchDelay
	if err := s.check(); err != nil {
		_ = db.Close()
		return nil, err
	}
	logger.Info("event queue opened", "path", path)
	return s, nil
}

// openBolt opens the file with a bounded wait for its lock. bbolt can panic
// on a damaged file, so a panic becomes an error.
func openBolt(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruption{fmt.Errorf("bbolt panicked: %v", r)}
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: storeLockTimeout})
}

// check creates the bucket if it is missing, then walks every page of the
// file, so corruption shows at start instead of in the middle of serving.
func (s *BoltStore) check() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptError(s.path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()

	err = s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(eventsBucket)
		return err
	})
	if isCorrupt(err) {
		return corruptError(s.path, err)
	}
	if err != nil {
		return fmt.Errorf("open event queue %s: %w", s.path, err)
	}

	return s.db.View(func(tx *bolt.Tx) error {
		var problems []error
		for problem := range tx.Check() {
			problems = append(problems, problem)
		}
		if len(problems) > 0 {
			return corruptError(s.path, errors.Join(problems...))
		}
		return nil
	})
}

// corruption marks an error that means the file is damaged.
type corruption struct{ err error }

func (c corruption) Error() string { return c.err.Error() }
func (c corruption) Unwrap() error { return c.err }

func isCorrupt(err error) bool {
	var marked corruption
	return errors.As(err, &marked) ||
		errors.Is(err, bolterrors.ErrInvalid) ||
		errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) ||
		errors.Is(err, bolterrors.ErrInvalidMapping)
}

func corruptError(path string, err error) error {
	return fmt.Errorf("event queue %s is corrupt: %w: move the file aside to start with an empty queue, which abandons the events in it", path, err)
}

// Path returns the file name of the store.
func (s *BoltStore) Path() string { return s.path }

// Put stores ev with fsync. Of the headers it keeps only those that
// expressions see, keyed by lowercased name as [matcher.FilterHeaders]
// returns them, so the event replays with the same expression environment
// and nothing else a request carried reaches the disk.
func (s *BoltStore) Put(ev model.Event) error {
	ev.Headers = expressionHeaders(ev.Headers)
	value, err := ev.MarshalBinary()
	if err != nil {
		return fmt.Errorf("store event %s in %s: %w", ev.ID, s.path, err)
	}
	key := eventKey(ev)

	err = s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(eventsBucket).Put(key, value)
	})
	if err != nil {
		return fmt.Errorf("store event %s in %s: %w", ev.ID, s.path, err)
	}
	return nil
}

// Delete removes ev with fsync.
func (s *BoltStore) Delete(ev model.Event) error {
	key := eventKey(ev)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(eventsBucket).Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete event %s from %s: %w", ev.ID, s.path, err)
	}
	return nil
}

// Pending returns every stored event in receive order. A record that does
// not decode is an error naming the file, because skipping it would lose
// an accepted event without a trace.
func (s *BoltStore) Pending() (events []model.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptError(s.path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()

	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(eventsBucket).ForEach(func(key, value []byte) error {
			var ev model.Event
			if err := ev.UnmarshalBinary(value); err != nil {
				return corruptError(s.path, fmt.Errorf("record %q: %w", key, err))
			}
			events = append(events, ev)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// Close closes the file, waiting for transactions in progress.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close event queue %s: %w", s.path, err)
	}
	return nil
}

// eventKey returns ev's key in eventsBucket. An event received before 1970,
// such as one with a zero ReceivedAt, sorts first.
func eventKey(ev model.Event) []byte {
	var nanos uint64
	if ev.ReceivedAt.After(time.Unix(0, 0)) {
		nanos = uint64(ev.ReceivedAt.UnixNano())
	}
	key := make([]byte, 8, 8+len(ev.ID))
	binary.BigEndian.PutUint64(key, nanos)
	return append(key, ev.ID...)
}

// expressionHeaders returns the headers that expressions see, or nil when
// there are none.
func expressionHeaders(headers map[string][]string) map[string][]string {
	filtered := matcher.FilterHeaders(headers)
	if len(filtered) == 0 {
		return nil
	}
	kept := make(map[string][]string, len(filtered))
	for name, values := range filtered {
		kept[name] = values.([]string)
	}
	return kept
}
