package tlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	f_log "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// strictWitness is a C2SP tlog-witness for unit tests that holds the log
// to the protocol: the old size must be the one it holds (else 409 with
// it), the consistency proof must verify from its root, and the checkpoint
// must be signed by the log. TestWitnessedCheckpoints (cmd/signet) runs
// transparency-dev/witness itself.
type strictWitness struct {
	t        *testing.T
	log      note.Verifier
	cosigner note.Signer
	vkey     string

	mu         sync.Mutex
	size       uint64
	root       []byte
	conflicts  int
	withProofs int
}

func newStrictWitness(t *testing.T, logKey ed25519.PrivateKey) (*strictWitness, *httptest.Server) {
	vk, err := note.NewEd25519VerifierKey(testOrigin, logKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(vk)
	if err != nil {
		t.Fatal(err)
	}
	skey, wvkey, err := note.GenerateKey(rand.Reader, "strict.witness")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	w := &strictWitness{t: t, log: lv, cosigner: cs, vkey: cv}
	srv := httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(srv.Close)
	return w, srv
}

func (w *strictWitness) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Scan()
	old, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "old "), 10, 64)
	if err != nil {
		http.Error(rw, "bad old line", http.StatusBadRequest)
		return
	}
	var p [][]byte
	consumed := len(sc.Text()) + 1
	for sc.Scan() && sc.Text() != "" {
		consumed += len(sc.Text()) + 1
		h, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			http.Error(rw, "bad proof line", http.StatusBadRequest)
			return
		}
		p = append(p, h)
	}
	cpRaw := body[consumed+1:]
	n, err := note.Open(cpRaw, note.VerifierList(w.log))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusForbidden)
		return
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old != w.size {
		w.conflicts++
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", w.size)
		return
	}
	if old > 0 && old < cp.Size {
		w.withProofs++
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.Size, p, w.root, cp.Hash); err != nil {
			http.Error(rw, err.Error(), http.StatusUnprocessableEntity)
			return
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.cosigner)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	w.size, w.root = cp.Size, cp.Hash
	_, sigs, _ := strings.Cut(string(signed), "\n\n")
	_, _ = io.WriteString(rw, sigs)
}

// TestGatewayFollowsTheProtocol: entries are acknowledged under cosigned
// checkpoints, each round proves consistency from the witness's size, and
// a restarted log that no longer knows that size learns it from the 409.
func TestGatewayFollowsTheProtocol(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	w, srv := newStrictWitness(t, key)
	policy, err := ParseWitnessPolicy([]byte(fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	withWitness := func(o *Options) { o.Witnesses = policy }
	tl := openTestLog(t, dir, key, withWitness)
	s := newECDSASigner(t)
	appendSome := func(tl *testLog, n int, tag string) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tle, err := tl.AppendHashedRekord(context.Background(), s.request(t, fmt.Appendf(nil, "%s %d", tag, i)))
				if err != nil {
					t.Error(err)
					return
				}
				if env := tle.GetInclusionProof().GetCheckpoint().GetEnvelope(); !strings.Contains(env, "— strict.witness ") {
					t.Errorf("entry %d answered under a checkpoint without the cosignature:\n%s", tle.GetLogIndex(), env)
				}
			}()
		}
		wg.Wait()
	}
	appendSome(tl, 20, "first")
	appendSome(tl, 20, "second")
	tl.close(t)

	tl2 := openTestLog(t, dir, key, withWitness)
	appendSome(tl2, 5, "after restart")
	_, cp := get(t, tl2.srv.URL+"/api/v2/checkpoint")
	if !strings.Contains(string(cp), "— strict.witness ") {
		t.Errorf("GET /api/v2/checkpoint serves no cosigned checkpoint:\n%s", cp)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size != 45 {
		t.Errorf("the witness holds tree size %d, want 45", w.size)
	}
	if w.withProofs == 0 || w.conflicts == 0 {
		t.Errorf("rounds with consistency proofs %d, 409 answers %d; want both (the restarted log starts from old 0)", w.withProofs, w.conflicts)
	}
}
