package attest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/server/apierror"
	"github.com/signet-dev/signet/server/tlog"
)

// FuzzSubmitRequest holds POST /api/v2/attestations, in front of signet's
// real transparency log, to: every body is answered 201, 409 (stored
// before), 400 or 413, with a JSON body, never a server error; a body is
// stored exactly when validation accepts its envelope and verifier, decoded
// independently of the handler, and then the log accepts it too (the store
// never vouches for what the log refuses) and the stored record reads back
// with the envelope and verifier that were sent; a refused body appends
// nothing. Signer certificates must chain to the interop Fulcio CA. Seeds
// (testdata/fuzz/FuzzSubmitRequest) are the DSSE envelope cosign made for the
// interop provenance bundle with its certificate, envelopes signed by keys
// of every accepted type, and refusals. For a longer run:
//
//	go test ./server/attest -run '^$' -fuzz '^FuzzSubmitRequest$' -fuzztime 10m
func FuzzSubmitRequest(f *testing.F) {
	f.Add([]byte(`{"envelope":null,"verifier":null}`))
	f.Add([]byte(`{"envelope":{},"verifier":{},"extra":1}`))
	f.Add([]byte(`{"envelope":{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="},{"sig":"AA=="}]},"verifier":{"publicKey":{"rawBytes":"AA=="},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}`))
	root, err := trust.ParseRoot(readInterop(f, "trusted_root.json"))
	if err != nil {
		f.Fatal(err)
	}
	l := openLog(f)
	e := newEnv(f, func(o *Options) { o.Log, o.Roots = l, root.CAs[0].Roots() })
	v := validator{roots: root.CAs[0].Roots()}

	f.Fuzz(func(t *testing.T, body []byte) {
		e.t = t // the env's helpers must not call F methods inside the target
		records, pending, _ := e.counts()
		req := httptest.NewRequest(http.MethodPost, "/api/v2/attestations", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(rec, req)

		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer %d is not JSON: %s", rec.Code, rec.Body)
		}
		env, ver, decoded := decodeSubmission(body)
		var sub *submission
		if decoded {
			sub, _ = v.validate(env, ver)
		}
		after, pendingAfter, _ := e.counts()
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var ae apierror.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Message == "" {
				t.Fatalf("refusal without a message: %s", rec.Body)
			}
			if rec.Code == http.StatusRequestEntityTooLarge && int64(len(body)) <= e.store.maxBytes {
				t.Fatalf("a %d-byte body is refused as too large", len(body))
			}
			if sub != nil && rec.Code == http.StatusBadRequest {
				t.Fatalf("refused (%d: %s) a submission validation accepts", rec.Code, ae.Message)
			}
			if after != records || pendingAfter != pending {
				t.Fatalf("a refused submission changed the store: %d→%d records, %d→%d pending", records, after, pending, pendingAfter)
			}
			return
		case http.StatusCreated, http.StatusConflict:
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
		if sub == nil {
			t.Fatalf("stored (%d) a submission validation refuses: %s", rec.Code, body)
		}
		if rec.Code == http.StatusCreated && after != records+1 {
			t.Fatalf("201 but the store holds %d records, was %d", after, records)
		}
		stored, err := e.store.get(context.Background(), sub.id)
		if err != nil || stored == nil {
			t.Fatalf("answered %d but attestation %s is not stored (%v)", rec.Code, sub.id, err)
		}
		if rec.Code == http.StatusCreated && (!proto.Equal(stored.Envelope, env) || !proto.Equal(stored.Verifier, ver)) {
			t.Fatalf("stored envelope or verifier differs from what was sent")
		}
		if rec.Code == http.StatusConflict && !bytes.Equal(stored.Envelope.GetSignatures()[0].GetSig(), env.GetSignatures()[0].GetSig()) {
			t.Fatal("a duplicate of an attestation with another signature")
		}
		if got := stored.Entry.GetCanonicalizedBody(); !bytes.Contains(got, []byte(`"hashedrekord"`)) {
			t.Fatalf("stored entry %s is not a hashedrekord", got)
		}
	})
}

// openLog opens signet's transparency log, with its default batching, in a
// temporary directory.
func openLog(f *testing.F) *tlog.Log {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err == nil {
		var l *tlog.Log
		if l, err = tlog.Open(context.Background(), tlog.Options{Dir: f.TempDir(), Signer: key, Origin: "signet.test"}); err == nil {
			f.Cleanup(func() { _ = l.Close(context.Background()) })
			return l
		}
	}
	f.Fatalf("opening the transparency log: %v", err)
	return nil
}

// decodeSubmission decodes a request body as the API documents it: a JSON
// object of exactly "envelope" (a DSSE envelope) and "verifier" (a Rekor v2
// verifier), in protojson; null or absent parts are nil.
func decodeSubmission(body []byte) (*dssepb.Envelope, *rekorv2.Verifier, bool) {
	var parts map[string]json.RawMessage
	if json.Unmarshal(body, &parts) != nil {
		return nil, nil, false
	}
	var env *dssepb.Envelope
	var ver *rekorv2.Verifier
	for k, raw := range parts {
		isNull := len(raw) == 0 || string(raw) == "null"
		switch {
		case k == "envelope" && !isNull:
			env = &dssepb.Envelope{}
			if protojson.Unmarshal(raw, env) != nil {
				return nil, nil, false
			}
		case k == "verifier" && !isNull:
			ver = &rekorv2.Verifier{}
			if protojson.Unmarshal(raw, ver) != nil {
				return nil, nil, false
			}
		case k != "envelope" && k != "verifier":
			return nil, nil, false
		}
	}
	return env, ver, true
}
