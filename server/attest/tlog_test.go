package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/signet-dev/signet/server/tlog"
)

var _ Appender = (*tlog.Log)(nil)

// With signet's real log: entries are appended, their inclusion proofs
// verify against the returned root, and the store links them to envelopes.
func TestWithRealLog(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(context.Background(), tlog.Options{
		Dir: filepath.Join(t.TempDir(), "log"), Signer: key, Origin: "signet.test",
		CheckpointInterval: 100 * time.Millisecond, BatchMaxAge: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })

	e := newEnv(t)
	e.reopen(func(o *Options) { o.Log = l })
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	for i, subject := range []string{"first", "second"} {
		resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest(subject))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
		if resp.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", subject, resp.status, resp.body)
		}
		rec, err := e.store.get(context.Background(), resp.json(t)["attestationId"].(string))
		if err != nil || rec == nil {
			t.Fatalf("stored record: %v", err)
		}
		p := rec.Entry.GetInclusionProof()
		if rec.Entry.GetLogIndex() != int64(i) {
			t.Errorf("%s: log index %d", subject, rec.Entry.GetLogIndex())
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(rec.Entry.GetCanonicalizedBody())
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.GetLogIndex()), uint64(p.GetTreeSize()), leaf, p.GetHashes(), p.GetRootHash()); err != nil {
			t.Errorf("%s: inclusion proof: %v", subject, err)
		}
	}
}
