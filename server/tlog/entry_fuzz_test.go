package tlog

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// decodeCreateEntry is what handleCreateEntry does with a request body
// before anything is appended: decode it as a CreateEntryRequest with the
// handler's options, take the hashedrekord, and validate it into the entry
// body.
func decodeCreateEntry(body []byte) (*rekorv2.HashedRekordRequestV002, []byte, error) {
	var req rekorv2.CreateEntryRequest
	if err := requestJSON.Unmarshal(body, &req); err != nil {
		return nil, nil, invalid("%v", err)
	}
	hr := req.GetHashedRekordRequestV002()
	if hr == nil {
		return nil, nil, invalid("no hashedRekordRequestV002")
	}
	entry, err := canonicalHashedRekord(hr)
	return hr, entry, err
}

// FuzzCreateEntryRequest holds the decoding and validation of a POST
// /api/v2/log/entries body to: a body is refused (ErrInvalidEntry, HTTP 400,
// nothing appended) or yields exactly the entry rekor-tiles would write for
// it, as RFC 8785 canonical JSON carrying the request's digest, signature
// and verifier, whose signature verifies over the digest with the
// verifier's key. Seeds (testdata/fuzz/FuzzCreateEntryRequest) are the
// requests behind the interop bundles' entries (cosign, sigstore-go,
// sigstore-js), requests of every accepted key type, and refusals. Bodies are
// bounded by the handler's MaxBytesReader (DefaultMaxRequestBytes). For a
// longer run:
//
//	go test ./server/tlog -run '^$' -fuzz '^FuzzCreateEntryRequest$' -fuzztime 10m
func FuzzCreateEntryRequest(f *testing.F) {
	f.Add([]byte(`{"hashedRekordRequestV002":{}}`))
	f.Add([]byte(`{"dsseRequestV002":{}}`))
	f.Add([]byte(`{"hashedRekordRequestV002":{"digest":"AA==","signature":{"content":"AA==","verifier":{"publicKey":{"rawBytes":"AA=="},"keyDetails":"PKIX_ED25519"}}},"extra":1}`))
	tl := openTestLog(f, "", nil, nil)
	mux := tl.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > DefaultMaxRequestBytes {
			return
		}
		hr, entry, err := decodeCreateEntry(body)
		if (entry == nil) == (err == nil) {
			t.Fatalf("validation returned entry %v and error %v", entry != nil, err)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v2/log/entries", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("refusal is not ErrInvalidEntry: %v", err)
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("the handler answered %d to a body validation refuses (%v): %s", rec.Code, err, rec.Body)
			}
			return
		}
		if want := rekorTilesBody(t, hr); !bytes.Equal(entry, want) {
			t.Fatalf("entry differs from rekor-tiles'\n got %s\nwant %s", entry, want)
		}
		if canon, err := jsoncanonicalizer.Transform(entry); err != nil || !bytes.Equal(canon, entry) || len(entry) > maxEntryBytes {
			t.Fatalf("entry is not canonical JSON of at most %d bytes (%v): %s", maxEntryBytes, err, entry)
		}
		var e rekorv2.Entry
		if err := protojson.Unmarshal(entry, &e); err != nil {
			t.Fatalf("entry does not decode: %v", err)
		}
		got := e.GetSpec().GetHashedRekordV002()
		if !bytes.Equal(got.GetData().GetDigest(), hr.GetDigest()) || !proto.Equal(got.GetSignature(), hr.GetSignature()) {
			t.Fatalf("entry %s does not carry the request's digest, signature and verifier", entry)
		}
		if err := verifyIndependently(hr); err != nil {
			t.Fatalf("accepted a request whose signature does not verify: %v", err)
		}
		switch rec.Code {
		case http.StatusCreated:
			if tle := decodeTLE(t, rec.Body.Bytes()); !bytes.Equal(tle.GetCanonicalizedBody(), entry) {
				t.Fatalf("the log appended %s for the entry %s", tle.GetCanonicalizedBody(), entry)
			}
		case http.StatusConflict: // appended before, as an equivalent body
		default:
			t.Fatalf("the handler answered %d to a valid body: %s", rec.Code, rec.Body)
		}
	})
}

// verifyIndependently checks the request's signature with the standard
// library alone, by the algorithm keyDetails names.
func verifyIndependently(hr *rekorv2.HashedRekordRequestV002) error {
	v := hr.GetSignature().GetVerifier()
	var pub crypto.PublicKey
	if c := v.GetX509Certificate(); c != nil {
		cert, err := x509.ParseCertificate(c.GetRawBytes())
		if err != nil {
			return err
		}
		pub = cert.PublicKey
	} else {
		var err error
		if pub, err = x509.ParsePKIXPublicKey(v.GetPublicKey().GetRawBytes()); err != nil {
			return err
		}
	}
	digest, sig := hr.GetDigest(), hr.GetSignature().GetContent()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case ed25519.PublicKey:
		if v.GetKeyDetails() != commonv1.PublicKeyDetails_PKIX_ED25519_PH {
			return errors.New("an Ed25519 key that is not Ed25519ph")
		}
		return ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512})
	}
	return errors.New("unknown key type")
}
