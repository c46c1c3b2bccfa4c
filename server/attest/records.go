package attest

import (
	"context"
	"errors"
)

// records is where a Store keeps its attestations, their index and the
// pending markers of appends in flight: a bbolt file of this server's own
// (boltRecords), or a MySQL-compatible database that every replica behind
// a load balancer shares (sqlRecords). The Store does the validating,
// timestamping and logging; a records implementation only keeps state.
type records interface {
	// claim marks the log append of id as started. It fails with
	// errStored if id is stored, and with errClaimed if another request
	// (on another replica) is appending it now. wasPending says a marker
	// of an earlier, interrupted attempt was there: that attempt may have
	// been appended.
	claim(ctx context.Context, id string) (wasPending bool, err error)
	// release gives up a claim whose append may have happened: the marker
	// stays (it is reported, and a resubmission completes it), but a
	// resubmission need not wait for the claim to expire.
	release(ctx context.Context, id string) error
	// unmark removes the marker of an append that did not happen.
	unmark(ctx context.Context, id string) error
	// put stores a record with its index entries and clears its marker,
	// all at once. It fails with errStored if id is stored already.
	put(ctx context.Context, rec *Record) error
	// has reports whether id is stored.
	has(ctx context.Context, id string) (bool, error)
	// get loads one record; nil if there is none.
	get(ctx context.Context, id string) (*Record, error)
	// find answers a query: the page, newest first, and the cursor of the
	// next page (0 when there is none). See Store.find.
	find(ctx context.Context, q query) ([]*Record, uint64, error)
	// counts are the records and pending markers held.
	counts(ctx context.Context) (stored, pending int, err error)
	close() error
}

var (
	errStored  = errors.New("the attestation is stored")
	errClaimed = errors.New("the attestation is being logged by another request")
	// errUnavailable is wrapped by failures of a database that does not
	// answer (down, unreachable, failing over, overloaded): nothing the
	// client sent was wrong, and the same request succeeds once it is back.
	errUnavailable = errors.New("the attestation database is unavailable")
)
