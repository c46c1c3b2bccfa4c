package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
)

// A POSIX log copied to distributed storage is the same tree: the same
// root at the same size, proofs handed out before verify against trees
// the new log signs, it goes on from the next index, and a second run
// finds nothing to do; a target holding another log is refused.
func TestMigrateKeepsTheTree(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	src := openTestLog(t, "", key, nil)
	s := newECDSASigner(t)
	const n = 300 // a full tile and a partial one
	var tles []*rekorv1.TransparencyLogEntry
	for i := range n {
		status, tle, body := appendVia(t, src, s, fmt.Sprintf("before %d", i))
		if status != http.StatusCreated {
			t.Fatalf("append %d: %d %s", i, status, body)
		}
		tles = append(tles, tle)
	}
	src.close(t)

	ds := startDistributedStore(t)
	d := ds.log(t, "migrated", "signet-log", "log/")
	opts := MigrateOptions{Dir: src.dir, Key: key.Public().(ed25519.PublicKey), Origin: testOrigin, To: d}
	rep, err := Migrate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TreeSize != n || rep.Done {
		t.Fatalf("report %+v, want a tree of %d copied", rep, n)
	}
	last := tles[n-1].GetInclusionProof()
	if last.GetTreeSize() != n || !bytes.Equal(rep.Root, last.GetRootHash()) {
		t.Fatalf("migrated root %x at %d; the source handed out %x at %d", rep.Root, rep.TreeSize, last.GetRootHash(), last.GetTreeSize())
	}
	if again, err := Migrate(context.Background(), opts); err != nil || !again.Done {
		t.Fatalf("second run: %+v, %v; want nothing to do", again, err)
	}

	dst := openDistributedLog(t, d, key)
	status, tle, body := appendVia(t, dst, s, "after")
	if status != http.StatusCreated || tle.GetLogIndex() != n {
		t.Fatalf("append after migrating: %d, index %d: %s", status, tle.GetLogIndex(), body)
	}
	p := tle.GetInclusionProof()
	for _, old := range []*rekorv1.TransparencyLogEntry{tles[0], tles[255], tles[n-1]} {
		op := old.GetInclusionProof()
		if err := consistent(dst.tiles, uint64(op.GetTreeSize()), uint64(p.GetTreeSize()), op.GetRootHash(), p.GetRootHash()); err != nil {
			t.Fatalf("entry %d's tree is not a prefix of the migrated log's: %v", old.GetLogIndex(), err)
		}
	}
	dst.close(t)

	// Another log into the same target: refused, nothing changed.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	o2 := openTestLog(t, "", other, nil)
	appendVia(t, o2, s, "another log")
	o2.close(t)
	_, err = Migrate(context.Background(), MigrateOptions{Dir: o2.dir, Key: other.Public().(ed25519.PublicKey), Origin: testOrigin, To: d})
	if err == nil || !strings.Contains(err.Error(), "already holds a log of origin") {
		t.Fatalf("migrating another log over this one: %v", err)
	}
}
