package verify

import (
	"errors"
	"fmt"
	"time"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/timelog"
)

// checkTimestampLog verifies the log entry a timestamp token carries (time
// transparency, core/timelog): that the entry records exactly this token's
// signature by the TSA certificate that verified it, is included under a
// checkpoint of a trusted log, and, with a witness policy, that the
// checkpoint is cosigned. A timestamp that carries no entry was not logged
// and passes; one whose entry does not hold fails, whatever else verifies.
func (v *Verifier) checkTimestampLog(st *signedTime, i int, witnesses *WitnessPolicy) (*LogEntry, error) {
	entry, _, err := v.timestampEntry(st, i, witnesses)
	return entry, err
}

// timestampEntry is checkTimestampLog, also returning the entry's body.
func (v *Verifier) timestampEntry(st *signedTime, i int, witnesses *WitnessPolicy) (*LogEntry, []byte, error) {
	raw, err := timelog.Extract(st.resp)
	if errors.Is(err, timelog.ErrNotLogged) {
		return nil, nil, nil
	}
	where := fmt.Sprintf("rfc3161Timestamps[%d] log entry", i)
	if err != nil {
		return nil, nil, fail(CheckTimestampLog, err, "%s", where)
	}
	var e protorekor.TransparencyLogEntry
	if err := protojson.Unmarshal(raw, &e); err != nil {
		return nil, nil, fail(CheckTimestampLog, err, "%s is not a TransparencyLogEntry", where)
	}
	log, ok := v.root.Log(e.GetLogId().GetKeyId())
	if !ok {
		return nil, nil, fail(CheckTimestampLog, nil, "%s is from log %x, which the trusted root does not list", where, e.GetLogId().GetKeyId())
	}
	if !log.ValidFor.Contains(st.ts.Time) {
		return nil, nil, fail(CheckTimestampLog, nil, "%s: key of log %s is valid %s, not at the timestamp's time %s", where, log.BaseURL, log.ValidFor, st.ts.Time.UTC().Format(time.RFC3339))
	}
	if e.GetInclusionProof() == nil {
		return nil, nil, fail(CheckTimestampLog, nil, "%s carries no inclusion proof", where)
	}
	parts, err := timelog.SignedParts(st.token)
	if err != nil {
		return nil, nil, fail(CheckTimestampLog, err, "%s", where)
	}
	want := expectedEntry{sig: parts.Signature, certDER: st.signer.Raw, digest: &Digest{Algorithm: parts.Hash, Value: parts.Digest}}
	if err := checkBody(&e, want); err != nil {
		return nil, nil, retag(err, where)
	}
	cp, err := checkInclusion(log, &e)
	if err != nil {
		return nil, nil, retag(err, where)
	}
	entry := &LogEntry{LogID: log.ID, BaseURL: log.BaseURL, LogIndex: e.GetLogIndex(), Kind: e.GetKindVersion().GetKind(), Version: e.GetKindVersion().GetVersion(), TreeSize: cp.Size, RootHash: cp.Hash}
	if witnesses != nil {
		if entry.Witnesses, err = witnesses.check(e.GetInclusionProof().GetCheckpoint().GetEnvelope()); err != nil {
			return nil, nil, retag(err, where)
		}
	}
	return entry, e.GetCanonicalizedBody(), nil
}

// retag reports a log entry check's failure as the timestamp log's, naming
// the check that failed inside it.
func retag(err error, where string) error {
	var e *Error
	if !errors.As(err, &e) {
		return fail(CheckTimestampLog, err, "%s", where)
	}
	out := *e
	out.Check = CheckTimestampLog
	out.Msg = fmt.Sprintf("%s: %s: %s", where, e.Check, e.Msg)
	return &out
}

// LoggedTimestamp is a verified timestamp and, when it carries one, its
// verified log entry.
type LoggedTimestamp struct {
	Time   time.Time
	TSA    string // the trusted TSA's URI
	Entry  *LogEntry
	Body   []byte // the entry's canonicalized body, for comparing with the log
	Logged bool
}

// VerifyTimestamp verifies one RFC 3161 timestamp (a TimeStampResp as a
// bundle holds it) against the trusted root's TSAs, and the log entry it
// carries (time transparency), offline. It does not bind the timestamp to
// any signature; the bundle verifier does that. Failures are *Error
// (CheckTimestamp, CheckTimestampLog).
func (v *Verifier) VerifyTimestamp(resp []byte) (*LoggedTimestamp, error) {
	st, err := verifyTimestampToken(v.root, resp)
	if err != nil {
		return nil, fail(CheckTimestamp, err, "timestamp")
	}
	out := &LoggedTimestamp{Time: st.ts.Time.UTC(), TSA: st.tsa.URI}
	entry, body, err := v.timestampEntry(st, 0, nil)
	if err != nil {
		return nil, err
	}
	if entry != nil {
		out.Entry, out.Body, out.Logged = entry, body, true
	}
	return out, nil
}
