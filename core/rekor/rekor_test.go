package rekor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

func entryFor(index int64) *protorekor.TransparencyLogEntry {
	return &protorekor.TransparencyLogEntry{
		LogIndex:          index,
		LogId:             &protocommon.LogId{KeyId: []byte("log-id")},
		KindVersion:       &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		CanonicalizedBody: []byte(`{"apiVersion":"0.0.2","kind":"hashedrekord"}`),
		InclusionProof: &protorekor.InclusionProof{LogIndex: index, TreeSize: index + 1, RootHash: make([]byte, 32),
			Checkpoint: &protorekor.Checkpoint{Envelope: "log.example\n1\nAAAA\n\n— log.example abc\n"}},
	}
}

func TestCreateHashedRekord(t *testing.T) {
	var got *rekorv2.HashedRekordRequestV002
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/log/entries" || r.Method != http.MethodPost {
			http.Error(w, "route", 404)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req rekorv2.CreateEntryRequest
		// Strict, as rekor-tiles' gateway is.
		if err := protojson.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got = req.GetHashedRekordRequestV002()
		out, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(entryFor(7))
		w.WriteHeader(http.StatusCreated)
		w.Write(out)
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := bytes.Repeat([]byte{1}, 32)
	tle, err := c.CreateHashedRekord(context.Background(), digest, []byte("sig"), Verifier([]byte("cert-der"), nil, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	if err != nil {
		t.Fatal(err)
	}
	if tle.GetLogIndex() != 7 || tle.GetInclusionProof().GetCheckpoint() == nil {
		t.Fatalf("entry %v", tle)
	}
	if !bytes.Equal(got.GetDigest(), digest) || string(got.GetSignature().GetContent()) != "sig" ||
		string(got.GetSignature().GetVerifier().GetX509Certificate().GetRawBytes()) != "cert-der" ||
		got.GetSignature().GetVerifier().GetKeyDetails() != protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256 {
		t.Fatalf("request %v", got)
	}
}

func TestCreateRejectsIncompleteEntries(t *testing.T) {
	mutations := map[string]func(*protorekor.TransparencyLogEntry){
		"no proof":   func(e *protorekor.TransparencyLogEntry) { e.InclusionProof = nil },
		"wrong kind": func(e *protorekor.TransparencyLogEntry) { e.KindVersion.Kind = "dsse" },
		"no log id":  func(e *protorekor.TransparencyLogEntry) { e.LogId = nil },
	}
	for name, mutate := range mutations {
		e := entryFor(1)
		mutate(e)
		out, _ := protojson.Marshal(e)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			w.Write(out)
		}))
		c, _ := New(srv.URL, nil)
		if _, err := c.CreateHashedRekord(context.Background(), make([]byte, 32), []byte("s"), Verifier(nil, []byte("k"), 0)); err == nil {
			t.Errorf("%s: accepted", name)
		}
		srv.Close()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		fmt.Fprint(w, `{"code":6,"message":"an equivalent entry already exists in the transparency log with index 3"}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	_, err := c.CreateHashedRekord(context.Background(), make([]byte, 32), []byte("s"), Verifier(nil, []byte("k"), 0))
	if err == nil || !strings.Contains(err.Error(), "HTTP 409: an equivalent entry already exists") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckpoint(t *testing.T) {
	note := "log.example\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log.example qwerty\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/checkpoint" {
			http.Error(w, "route", 404)
			return
		}
		fmt.Fprint(w, note)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	cp, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != "log.example" || cp.Size != 42 || len(cp.Hash) != 32 || string(cp.Note) != note {
		t.Fatalf("checkpoint %+v", cp)
	}
}

func TestAttestationStore(t *testing.T) {
	env := &protodsse.Envelope{Payload: []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), PayloadType: "application/vnd.in-toto+json",
		Signatures: []*protodsse.Signature{{Sig: []byte("sig")}}}
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry, _ := protojson.Marshal(entryFor(9))
		envJSON, _ := protojson.Marshal(env)
		switch r.Method {
		case http.MethodPost:
			var req struct {
				Envelope json.RawMessage `json:"envelope"`
				Verifier json.RawMessage `json:"verifier"`
			}
			dec := json.NewDecoder(r.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			var e protodsse.Envelope
			var v rekorv2.Verifier
			if protojson.Unmarshal(req.Envelope, &e) != nil || protojson.Unmarshal(req.Verifier, &v) != nil || string(e.GetSignatures()[0].GetSig()) != "sig" || v.GetPublicKey() == nil {
				http.Error(w, "bad parts", 400)
				return
			}
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"attestationId":"%s","transparencyLogEntry":%s}`, strings.Repeat("a", 64), entry)
		case http.MethodGet:
			query = r.URL.RawQuery
			fmt.Fprintf(w, `{"attestations":[{"attestationId":"%s","envelope":%s,"verifier":{"publicKey":{"rawBytes":"AQ=="},"keyDetails":"PKIX_ECDSA_P256_SHA_256"},"transparencyLogEntry":%s,"statementType":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subjects":[{"name":"app","digest":{"sha256":"ab"}}],"identity":"id","issuer":"iss","storedTime":"2026-01-02T03:04:05Z","signedTimestamp":"AQI="}],"nextPageToken":"p2"}`,
				strings.Repeat("a", 64), envJSON, entry)
		}
	}))
	defer srv.Close()
	s, err := NewAttestationStore(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, tle, err := s.Submit(context.Background(), env, Verifier(nil, []byte{1}, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	if err != nil {
		t.Fatal(err)
	}
	if id != strings.Repeat("a", 64) || tle.GetLogIndex() != 9 {
		t.Fatalf("id %s entry %v", id, tle)
	}
	got, next, err := s.Search(context.Background(), Query{Digest: "sha256:ab", PredicateType: "https://slsa.dev/provenance/v1", PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if query != "digest=sha256%3Aab&pageSize=10&predicateType=https%3A%2F%2Fslsa.dev%2Fprovenance%2Fv1" {
		t.Fatalf("query %s", query)
	}
	if len(got) != 1 || next != "p2" || got[0].PredicateType != "https://slsa.dev/provenance/v1" || got[0].Subjects[0].Digest["sha256"] != "ab" ||
		string(got[0].Envelope.GetPayload()) != string(env.GetPayload()) || got[0].Entry.GetLogIndex() != 9 || got[0].StoredTime.Year() != 2026 ||
		!bytes.Equal(got[0].SignedTimestamp, []byte{1, 2}) {
		t.Fatalf("got %+v next %q", got, next)
	}
	if _, _, err := s.Search(context.Background(), Query{Issuer: "x"}); err == nil {
		t.Fatal("search without digest, predicate type or identity accepted")
	}
}

func TestAttestationBundle(t *testing.T) {
	id := strings.Repeat("b", 64)
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: []byte("cert")}},
			TlogEntries: []*protorekor.TransparencyLogEntry{entryFor(4)},
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: []byte("tsr")}},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{Payload: []byte("{}"), PayloadType: "application/vnd.in-toto+json",
			Signatures: []*protodsse.Signature{{Sig: []byte("sig")}}}},
	}
	good, _ := protojson.Marshal(pb)
	var answer func(w http.ResponseWriter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v2/attestations/"+id+"/bundle" {
			http.Error(w, "route "+r.URL.Path, 418)
			return
		}
		answer(w)
	}))
	defer srv.Close()
	s, err := NewAttestationStore(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}

	answer = func(w http.ResponseWriter) { w.Write(good) }
	got, err := s.Bundle(context.Background(), id)
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("bundle %s: %v", got, err)
	}

	for name, c := range map[string]struct {
		answer func(w http.ResponseWriter)
		want   []string
	}{
		"stored without a timestamp": {func(w http.ResponseWriter) {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"code":5,"message":"attestation was stored before this server kept timestamps"}`)
		}, []string{srv.URL, "HTTP 404", "stored before this server kept timestamps"}},
		"not a bundle": {func(w http.ResponseWriter) { fmt.Fprint(w, `{"mediaType":"x"}`) }, []string{srv.URL, "not a Sigstore bundle"}},
		"too large": {func(w http.ResponseWriter) {
			w.Write(bytes.Repeat([]byte(" "), maxBundleAnswer+1))
		}, []string{srv.URL, "exceeds"}},
	} {
		answer = c.answer
		_, err := s.Bundle(context.Background(), id)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", name, err, w)
			}
		}
	}
}
