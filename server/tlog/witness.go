package tlog

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/transparency-dev/tessera"
)

// DefaultWitnessTimeout bounds one round of asking the witnesses to cosign
// a checkpoint (the value tessera uses too).
const DefaultWitnessTimeout = 5 * time.Second

// ErrNotWitnessed: the entry was integrated, but no checkpoint cosigned by
// the witness policy's quorum covered it in time (HTTP 503). The entry is
// in the log; a retry is answered with it once a cosigned checkpoint is
// published.
var ErrNotWitnessed = errors.New("no checkpoint cosigned by the witnesses the log's policy requires was published in time")

// WitnessPolicy is which witnesses must cosign every checkpoint the log
// publishes, in the policy format tessera reads (Sigsum's policy format
// with C2SP signed-note cosignature/v1 verifier keys): `witness NAME VKEY
// URL` lines, `group NAME K|all|any MEMBER...` lines and one `quorum NAME`.
// Clients verify with the same file (core/verify.ParseWitnessPolicy), which
// also admits witness lines without a URL.
type WitnessPolicy struct {
	group tessera.WitnessGroup
}

// ParseWitnessPolicy reads a policy file's content.
func ParseWitnessPolicy(p []byte) (*WitnessPolicy, error) {
	g, err := tessera.NewWitnessGroupFromPolicy(p)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if len(g.Endpoints()) == 0 {
		return nil, errors.New("witness policy: its quorum names no witness; leave the policy out to publish checkpoints unwitnessed")
	}
	return &WitnessPolicy{group: g}, nil
}

// witnessWait bounds how long an append waits for a cosigned checkpoint:
// two rounds of asking the witnesses (an entry may just miss one) and a
// second for the retry pause between failed rounds.
func witnessWait(timeout time.Duration) time.Duration {
	return 2*timeout + time.Second
}

// witnessClient is the HTTP client the log asks witnesses with: each
// request bounded, few connections per witness.
func witnessClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:               nil, // witnesses are named by the operator, not reached through the environment's proxy
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		MaxConnsPerHost:     16,
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: timeout,
	}}
}

// witnessStatus says what a C2SP tlog-witness answer means for the log's
// operator.
func witnessStatus(code int) string {
	switch code {
	case http.StatusNotFound:
		return "the witness does not know this log's origin: add the log (origin and verifier key) to the witness's configuration"
	case http.StatusForbidden:
		return "the checkpoint's signature does not verify with the key the witness has for this log: give the witness the log's current verifier key"
	case http.StatusUnprocessableEntity:
		return "the consistency proof does not verify against the witness's view: the witness holds a different tree of this log (a fork, or a log rebuilt under the same key)"
	case http.StatusBadRequest:
		return "the witness could not parse the request"
	}
	return "unexpected status"
}
