package server_test

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/signet-dev/signet/server/servertest"
)

// An SCT is the CT log's acknowledgement: every certificate issued before
// the server is killed with -9, under load, is proven included in the CT
// log after restart, at the index its SCT names, under a checkpoint signed
// by the CT log's key.
func TestSCTsSurviveKill9(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		certs []*x509.Certificate
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := requestCert(p, tok)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				certs = append(certs, c)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	close(stop)
	wg.Wait()
	if len(certs) < 20 {
		t.Fatalf("only %d certificates issued before the crash; the load did not build up", len(certs))
	}

	p2 := servertest.Start(t, data, "--dev-oidc")
	tr, _ := trustFiles(t, p2)
	if len(tr.CTLogs) != 1 {
		t.Fatalf("%d CT logs in the trusted root after restart", len(tr.CTLogs))
	}
	pub, err := x509.ParsePKIXPublicKey(tr.CTLogs[0].PublicKey.RawBytes)
	if err != nil {
		t.Fatal(err)
	}
	origin := mustURL(t, p2.URL).Hostname() + "/ctlog"
	vkey, err := fnote.RFC6962VerifierString("https://"+origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := fnote.NewRFC6962Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := client.NewHTTPFetcher(mustURL(t, p2.URL+"/ctlog/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	caDER := tr.CAs[0].CertChain.Certificates[0].RawBytes
	ctIssuer, err := ctx509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	type acked struct {
		index uint64
		leaf  []byte
	}
	var acks []acked
	var maxIdx uint64
	for _, c := range certs {
		cc, err := ctx509.ParseCertificate(c.Raw)
		if err != nil || len(cc.SCTList.SCTList) != 1 {
			t.Fatalf("certificate %x: %v, %d SCTs", c.SerialNumber, err, len(cc.SCTList.SCTList))
		}
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(cc.SCTList.SCTList[0].Val, &sct); err != nil {
			t.Fatal(err)
		}
		// static-ct-api's leaf_index extension: type 0, length 5, uint40.
		ext := sct.Extensions
		if len(ext) != 8 || ext[0] != 0 || ext[1] != 0 || ext[2] != 5 {
			t.Fatalf("SCT extensions %x carry no leaf index", ext)
		}
		idx := binary.BigEndian.Uint64(append([]byte{0, 0, 0}, ext[3:]...))
		leaf, err := ct.MerkleTreeLeafForEmbeddedSCT([]*ctx509.Certificate{cc, ctIssuer}, sct.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		leaf.TimestampedEntry.Extensions = sct.Extensions
		raw, err := cttls.Marshal(*leaf)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, acked{idx, raw})
		maxIdx = max(maxIdx, idx)
	}

	var size uint64
	var root []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cp, _, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, verifier, origin)
		if err != nil {
			t.Fatalf("CT checkpoint after restart: %v", err)
		}
		size, root = cp.Size, cp.Hash
		if size > maxIdx || time.Now().After(deadline) {
			break
		}
	}
	pb, err := client.NewProofBuilder(ctx, size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acks {
		if a.index >= size {
			t.Fatalf("SCT for leaf %d, but the CT log's checkpoint after restart has %d entries", a.index, size)
		}
		hashes, err := pb.InclusionProof(ctx, a.index)
		if err != nil {
			t.Fatalf("inclusion proof for %d: %v", a.index, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, size, rfc6962.DefaultHasher.HashLeaf(a.leaf), hashes, root); err != nil {
			t.Fatalf("the precertificate of an issued certificate (leaf %d) is not in the CT log after kill -9: %v", a.index, err)
		}
	}
	t.Logf("%d issued certificates all proven in the CT log after kill -9 (tree size %d)", len(acks), size)
}

// A damaged or rolled-back CT log is never signed as a new tree under the
// same key: the server refuses to start, naming the fork guard's reason.
func TestCTLogDamageIsDetected(t *testing.T) {
	bin := servertest.Binary(t)
	issued := func(t *testing.T) string {
		t.Helper()
		data := t.TempDir()
		p := servertest.Start(t, data, "--dev-oidc")
		tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			mustCertify(t, p, tok)
		}
		// Wait for a checkpoint of all five, so the guard has recorded it.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if code, cp := get(t, p, "/ctlog/checkpoint"); code == 200 && checkpointSize([]byte(cp)) == 5 {
				break
			}
		}
		if err := p.Stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, data string)
		want   string
	}{
		{"a leaf hash flipped in a tile", func(t *testing.T, data string) {
			flipByte(t, filepath.Join(data, "ctlog", "tile", "0", "000.p", "5"), 40)
		}, "is not an extension of tree 5"},
		{"the tree state rolled back", func(t *testing.T, data string) {
			if err := os.RemoveAll(filepath.Join(data, "ctlog")); err != nil {
				t.Fatal(err)
			}
		}, "signed a tree of 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := issued(t)
			c.damage(t, data)
			_, err := servertest.StartErr(bin, data, "--dev-oidc")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("server on a damaged CT log: %v, want a refusal saying %q", err, c.want)
			}
			t.Log(err)
			if out, code := fsck(t, bin, data); code != 1 || !strings.Contains(out, "problem: CT log: ") {
				t.Errorf("fsck exit %d on a damaged CT log:\n%s", code, out)
			}
		})
	}
	// fsck recomputes every tile from the data tiles, which the start
	// check does not read: a flipped byte in a precertificate is found
	// there, named by the tile it no longer matches.
	t.Run("fsck", func(t *testing.T) {
		data := issued(t)
		out, code := fsck(t, bin, data)
		if code != 0 || !strings.Contains(out, "ok: the CT log holds 5 precertificates") {
			t.Fatalf("fsck on a sound CT log: exit %d\n%s", code, out)
		}
		flipByte(t, filepath.Join(data, "ctlog", "tile", "data", "000.p", "5"), 200)
		out, code = fsck(t, bin, data)
		if code != 1 || !strings.Contains(out, "problem: CT log: ") || !strings.Contains(out, "tile/0/000.p/5 differs from the tile recomputed") {
			t.Fatalf("fsck on a flipped data tile: exit %d\n%s", code, out)
		}
	})
}
