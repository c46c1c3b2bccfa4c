package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/signet-dev/signet/core/timelog"
)

// TestTimeTransparency: the server's TSA logs every timestamp it issues
// and the response carries the entry; the verifier proves it, and `log
// search --timestamp` finds it in the log. A response without it is a
// timestamp that was not logged: verified as any, but not found.
func TestTimeTransparency(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "release 1.2.3\n")
	b := filepath.Join(e.dir, "app.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)

	var r verifyResult
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &r)
	if len(r.TimestampLogEntries) != 1 || len(r.LogEntries) != 1 || r.TimestampLogEntries[0].LogIndex == r.LogEntries[0].LogIndex {
		t.Fatalf("verified timestamp log entries %+v beside the signature's %+v; want one of its own", r.TimestampLogEntries, r.LogEntries)
	}

	var found timestampSearchResult
	runSignet(t, nil, "log", "search", "--timestamp", b, "--trusted-root", e.root, "-o", "json").want(t, 0).decode(t, &found)
	if len(found.Timestamps) != 1 || !found.Timestamps[0].Logged || found.Timestamps[0].LogIndex != r.TimestampLogEntries[0].LogIndex || found.Timestamps[0].LogURL != e.p.URL {
		t.Fatalf("log search --timestamp found %+v, want entry %d of %s", found.Timestamps, r.TimestampLogEntries[0].LogIndex, e.p.URL)
	}

	// The same bundle with the entry taken out of the response.
	stripped := filepath.Join(e.dir, "stripped.sigstore.json")
	editTimestamp(t, b, stripped, func(resp []byte) []byte {
		in := cryptobyte.String(resp)
		var top, status, st, token cryptobyte.String
		if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !top.ReadASN1(&status, cbasn1.SEQUENCE) || !status.ReadASN1Element(&st, cbasn1.INTEGER) || !top.ReadASN1Element(&token, cbasn1.SEQUENCE) {
			t.Fatal("not a TimeStampResp")
		}
		var nb cryptobyte.Builder
		nb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(st) })
			b.AddBytes(token)
		})
		out, err := nb.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := timelog.Extract(out); err != timelog.ErrNotLogged {
			t.Fatalf("stripping left an entry: %v", err)
		}
		return out
	})
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", stripped}, e.policy()...)...).want(t, 0)
	run := runSignet(t, nil, "log", "search", "--timestamp", stripped, "--trusted-root", e.root).want(t, 1)
	if !strings.Contains(run.stdout, "not logged") || !strings.Contains(run.stderr, "1 of 1 timestamp(s)") {
		t.Errorf("log search on an unlogged timestamp:\nstdout %s\nstderr %s", run.stdout, run.stderr)
	}
	// A DER response on its own is searched too; a file that is neither is
	// a usage error.
	der := filepath.Join(e.dir, "ts.der")
	if err := os.WriteFile(der, timestampOf(t, b), 0o644); err != nil {
		t.Fatal(err)
	}
	runSignet(t, nil, "log", "search", "--timestamp", der, "--trusted-root", e.root).want(t, 0)
	runSignet(t, nil, "log", "search", "--timestamp", e.file(t, "junk.json", "{}"), "--trusted-root", e.root).want(t, 2)
	runSignet(t, nil, "log", "search", "--timestamp", der, "--digest", "sha256:00", "--trusted-root", e.root).want(t, 2)
}

func timestampOf(t *testing.T, path string) []byte {
	t.Helper()
	return readBundle(t, path).GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()[0].GetSignedTimestamp()
}

// editTimestamp writes a copy of the bundle with its first timestamp edited.
func editTimestamp(t *testing.T, from, to string, edit func([]byte) []byte) {
	t.Helper()
	editBundleProto(t, from, to, func(pb *protobundle.Bundle) {
		ts := pb.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()[0]
		ts.SignedTimestamp = edit(ts.SignedTimestamp)
	})
}
