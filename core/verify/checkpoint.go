package verify

import (
	flog "github.com/transparency-dev/formats/log"

	"github.com/signet-dev/signet/core/trust"
)

// OpenCheckpoint verifies a C2SP signed-note checkpoint, as a log serves it,
// against the log's key and origin in the trusted root, and returns its body.
// The origin must be the log's exactly: this is for Rekor v2 logs, which is
// what serves checkpoints to follow.
// Failures are *Error with CheckCheckpoint. Tools that follow a log (signet
// log, monitors) need this without a bundle around the checkpoint.
func OpenCheckpoint(log *trust.Log, signedNote []byte) (*flog.Checkpoint, error) {
	return openCheckpoint(log, string(signedNote), false)
}
