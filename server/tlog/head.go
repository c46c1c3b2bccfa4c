package tlog

import (
	"context"
	"errors"
	"os"

	"github.com/signet-dev/signet/server/storage"
)

// headStore keeps the guard's record: the largest checkpoint the log key
// signed, apart from tessera's own state, so that losing or rolling back
// that state is detected rather than signed.
type headStore interface {
	// load returns the stored record, nil if there is none.
	load(ctx context.Context) ([]byte, error)
	// advance calls f with the stored record under a lock that excludes
	// every other writer of it, and stores what f returns (nil: nothing)
	// durably before it returns.
	advance(ctx context.Context, f func(cur []byte) ([]byte, error)) error
	// where names the record for messages.
	where() string
}

// fileHead is the record of a log on one machine: a file beside the log
// directory, written only by the server holding the data directory's lock.
type fileHead struct {
	path string
	cur  []byte
}

func (h *fileHead) where() string { return h.path }

func (h *fileHead) load(context.Context) ([]byte, error) {
	raw, err := os.ReadFile(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h.cur = raw
	return raw, nil
}

// advance needs no lock of its own: the guard's mutex serialises its
// callers, and the data directory's lock keeps other servers out.
func (h *fileHead) advance(_ context.Context, f func(cur []byte) ([]byte, error)) error {
	next, err := f(h.cur)
	if err != nil || next == nil {
		return err
	}
	if err := storage.WriteFileSync(h.path, next, 0o600); err != nil {
		return err
	}
	h.cur = next
	return nil
}
