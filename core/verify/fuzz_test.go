package verify_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// The fuzz targets hold the verifier to one property each: whatever it
// accepts is genuine. Nobody but the trusted CA, TSA and log can make a new
// valid certificate, timestamp or checkpoint, so an accepted input must be
// one of the seeds (up to parts nobody signed and nobody reports). Seeds are
// the interop bundles cosign, sigstore-go and sigstore-js made. CI runs each
// briefly (test.sh); for a longer run:
//
//	go test ./core/verify -run '^$' -fuzz '^FuzzVerifyBundle$' -fuzztime 10m

// genuine loads the interop bundles, parsed.
func genuine(f testing.TB) (fixture, []*protobundle.Bundle) {
	fx := loadFixture(f)
	var out []*protobundle.Bundle
	for _, c := range interopCases {
		b, err := bundle.Parse(fx.bundleBytes(f, c.file))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b.Proto())
	}
	return fx, out
}

// signedContent is a bundle without what nobody signed or reports: the
// media type (it only selects parsing rules; the content decides), the
// certificate's container (chain or leaf field), the DSSE keyid and the
// public key hint.
func signedContent(pb *protobundle.Bundle) *protobundle.Bundle {
	c := proto.Clone(pb).(*protobundle.Bundle)
	c.MediaType = ""
	vm := c.GetVerificationMaterial()
	if chain := vm.GetX509CertificateChain(); chain != nil {
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: chain.GetCertificates()[0]}
	}
	if env := c.GetDsseEnvelope(); env != nil {
		for _, s := range env.GetSignatures() {
			s.Keyid = ""
		}
	}
	return c
}

// corpusVariants applies the attack corpus' edits that need no authority's
// key to a genuine bundle, so the fuzzer starts at the known attack surface.
func corpusVariants(pb *protobundle.Bundle) []*protobundle.Bundle {
	edit := func(f func(pb *protobundle.Bundle)) *protobundle.Bundle {
		c := proto.Clone(pb).(*protobundle.Bundle)
		f(c)
		return c
	}
	entry := func(pb *protobundle.Bundle) *protorekor.TransparencyLogEntry {
		return pb.GetVerificationMaterial().GetTlogEntries()[0]
	}
	return []*protobundle.Bundle{
		edit(func(pb *protobundle.Bundle) { // never logged
			pb.MediaType = bundle.MediaTypeV01
			e := entry(pb)
			e.LogIndex, e.InclusionProof, e.IntegratedTime = 999999, nil, 0
			e.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: []byte("garbage")}
		}),
		edit(func(pb *protobundle.Bundle) { entry(pb).IntegratedTime = 1700000000 }),
		edit(func(pb *protobundle.Bundle) {
			e := entry(pb)
			e.CanonicalizedBody = bytes.Replace(e.CanonicalizedBody, []byte(`"spec"`), []byte(`"Spec"`), 1)
		}),
		edit(func(pb *protobundle.Bundle) {
			pb.VerificationMaterial.TlogEntries = append(pb.VerificationMaterial.TlogEntries, proto.Clone(entry(pb)).(*protorekor.TransparencyLogEntry))
		}),
		edit(func(pb *protobundle.Bundle) { pb.MediaType = bundle.MediaTypeV02 }),
	}
}

func FuzzVerifyBundle(f *testing.F) {
	fx, seeds := genuine(f)
	for _, c := range interopCases {
		f.Add(fx.bundleBytes(f, c.file))
	}
	for _, pb := range seeds {
		for _, v := range corpusVariants(pb) {
			f.Add(must(protojson.Marshal(v)))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Parse(data)
		if err != nil {
			return
		}
		for _, c := range interopCases {
			if _, err := fx.run(b, c, policyFor(c), fx.artifact); err != nil {
				if verify.CheckOf(err) == "" {
					t.Fatalf("%s: failure names no check: %v", c.file, err)
				}
				continue
			}
			if !slices.ContainsFunc(seeds, func(s *protobundle.Bundle) bool { return proto.Equal(signedContent(b.Proto()), signedContent(s)) }) {
				t.Fatalf("a bundle whose signed content is none of the genuine bundles verified under %s's policy", c.file)
			}
		}
	})
}

func timestamps(seeds []*protobundle.Bundle) [][]byte {
	var out [][]byte
	for _, pb := range seeds {
		for _, ts := range pb.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps() {
			out = append(out, ts.GetSignedTimestamp())
		}
	}
	return out
}

func FuzzTimestampToken(f *testing.F) {
	fx, seeds := genuine(f)
	var tokens [][]byte
	for _, der := range timestamps(seeds) {
		f.Add(der)
		f.Add(append(bytes.Clone(der), 0))                    // trailing byte
		f.Add(append([]byte{der[0], 0x83, 0x00}, der[2:]...)) // BER outer length
		tok, err := verify.TimestampToken(fx.root, der)
		if err != nil {
			f.Fatalf("seed timestamp refused: %v", err)
		}
		tokens = append(tokens, tok)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		tok, err := verify.TimestampToken(fx.root, der)
		if err != nil {
			return
		}
		for _, s := range tokens {
			if bytes.Equal(tok, s) {
				return
			}
		}
		t.Fatalf("accepted a timestamp token that is not byte for byte one the TSA issued")
	})
}

func FuzzCheckpoint(f *testing.F) {
	fx, seeds := genuine(f)
	var log *trust.Log
	for _, l := range fx.root.Logs {
		log = l
	}
	type head struct {
		origin string
		size   uint64
		hash   string
	}
	known := map[head]bool{}
	for _, pb := range seeds {
		env := pb.GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof().GetCheckpoint().GetEnvelope()
		f.Add([]byte(env))
		cp, err := verify.OpenCheckpoint(log, []byte(env))
		if err != nil {
			f.Fatalf("seed checkpoint refused: %v", err)
		}
		known[head{cp.Origin, cp.Size, string(cp.Hash)}] = true
	}
	f.Fuzz(func(t *testing.T, note []byte) {
		cp, err := verify.OpenCheckpoint(log, note)
		if err != nil {
			if verify.CheckOf(err) != verify.CheckCheckpoint {
				t.Fatalf("failure is not a checkpoint failure: %v", err)
			}
			return
		}
		if !known[head{cp.Origin, cp.Size, string(cp.Hash)}] {
			t.Fatalf("accepted a checkpoint the log never signed: %q size %d", cp.Origin, cp.Size)
		}
	})
}

// duplicateKey reports the first object key that appears twice at one level.
func duplicateKey(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if seen[k.(string)] {
					return fmt.Errorf("key %q twice", k)
				}
				seen[k.(string)] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		}
		return err
	}
	if err := walk(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func FuzzLogEntryBody(f *testing.F) {
	_, seeds := genuine(f)
	for _, pb := range seeds {
		body := pb.GetVerificationMaterial().GetTlogEntries()[0].GetCanonicalizedBody()
		f.Add(body)
		f.Add(bytes.Replace(body, []byte(`"spec"`), []byte(`"Spec"`), 1))
		i := bytes.Index(body, []byte(`,"spec":`))
		f.Add(append(append(append([]byte{}, body[:len(body)-1]...), body[i:len(body)-1]...), '}'))
	}
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"00"}},"signature":{"content":"AA==","publicKey":{"content":"AA=="}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := verify.ParseBody(body); err != nil {
			return
		}
		if err := duplicateKey(body); err != nil {
			t.Fatalf("accepted a body with a duplicate key: %v", err)
		}
		canon, err := jsoncanonicalizer.Transform(body)
		if err != nil || !bytes.Equal(canon, body) {
			t.Fatalf("accepted a body that is not RFC 8785 canonical JSON (%v)", err)
		}
		if strings.Contains(string(body), `"Spec"`) || strings.Contains(string(body), `"KIND"`) {
			t.Fatalf("accepted a case-folded key")
		}
	})
}

func FuzzCertificate(f *testing.F) {
	fx, seeds := genuine(f)
	known := map[string]bool{}
	for _, pb := range seeds {
		der := pb.GetVerificationMaterial().GetCertificate().GetRawBytes()
		known[string(der)] = true
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := verify.AcceptLeaf(fx.root, der, cert.NotBefore)
		if err != nil {
			if verify.CheckOf(err) == "" {
				t.Fatalf("failure names no check: %v", err)
			}
			return
		}
		if !known[string(der)] {
			t.Fatalf("accepted a certificate the CA never issued (SAN %q)", id.SAN)
		}
	})
}

// TestByteMutationSweep is the reviewer's experiment made a test: change
// every byte of genuine bundles, as JSON, and require that whatever still
// verifies is the same bundle as far as anything signed or reported goes.
func TestByteMutationSweep(t *testing.T) {
	fx, seeds := genuine(t)
	for _, i := range []int{3, 4} { // a message signature and a DSSE attestation, both with CI extensions
		c := interopCases[i]
		data := fx.bundleBytes(t, c.file)
		accepted := 0
		for pos := range data {
			m := bytes.Clone(data)
			m[pos] ^= 0x01
			b, err := bundle.Parse(m)
			if err != nil {
				continue
			}
			if _, err := fx.run(b, c, policyFor(c), fx.artifact); err != nil {
				continue
			}
			accepted++
			if !proto.Equal(signedContent(b.Proto()), signedContent(seeds[i])) {
				t.Errorf("%s: flipping byte %d (%q) changed signed content and still verified", c.file, pos, data[max(0, pos-20):min(len(data), pos+20)])
			}
		}
		t.Logf("%s: %d of %d single-byte mutants verified, each decoding to the genuine bundle", c.file, accepted, len(data))
	}
}
