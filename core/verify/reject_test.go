package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"path/filepath"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/verify"
)

// mutation changes a copy of a bundle; the verifier must then fail want.
type mutation struct {
	name   string
	want   verify.Check
	mutate func(pb *protobundle.Bundle)
	// redundant marks fields that repeat values the signed checkpoint
	// carries (root hash, tree size, proof log index). sigstore-go reads
	// the checkpoint and ignores these copies; signet requires them to agree.
	redundant bool
}

func flip(b []byte, i int) { b[i] ^= 0x01 }

// byteFlips yields one mutation per byte of the field that get selects.
func byteFlips(pb *protobundle.Bundle, name string, want verify.Check, get func(pb *protobundle.Bundle) []byte) []mutation {
	var out []mutation
	for i := range get(pb) {
		out = append(out, mutation{name: name, want: want, mutate: func(pb *protobundle.Bundle) { flip(get(pb), i) }})
	}
	return out
}

func certBytes(pb *protobundle.Bundle) []byte {
	vm := pb.GetVerificationMaterial()
	if c := vm.GetCertificate(); c != nil {
		return c.RawBytes
	}
	return vm.GetX509CertificateChain().GetCertificates()[0].RawBytes
}

func sigBytes(pb *protobundle.Bundle) []byte {
	if ms := pb.GetMessageSignature(); ms != nil {
		return ms.Signature
	}
	return pb.GetDsseEnvelope().GetSignatures()[0].Sig
}

func mutations(pb *protobundle.Bundle) []mutation {
	proof := func(pb *protobundle.Bundle) *protobundleProof {
		return pb.GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof()
	}
	var ms []mutation
	ms = append(ms, byteFlips(pb, "certificate byte", verify.CheckCertificateChain, certBytes)...)
	ms = append(ms, byteFlips(pb, "signature byte", verify.CheckSignature, sigBytes)...)
	for _, m := range byteFlips(pb, "root hash byte", verify.CheckInclusionProof, func(pb *protobundle.Bundle) []byte { return proof(pb).RootHash }) {
		m.redundant = true
		ms = append(ms, m)
	}
	for h := range proof(pb).GetHashes() {
		ms = append(ms, byteFlips(pb, "proof hash byte", verify.CheckInclusionProof, func(pb *protobundle.Bundle) []byte { return proof(pb).Hashes[h] })...)
	}
	ms = append(ms,
		mutation{name: "tree size +1", want: verify.CheckInclusionProof, redundant: true, mutate: func(pb *protobundle.Bundle) { proof(pb).TreeSize++ }},
		mutation{name: "tree size -1", want: verify.CheckInclusionProof, redundant: true, mutate: func(pb *protobundle.Bundle) { proof(pb).TreeSize-- }},
		mutation{name: "proof log index +1", want: verify.CheckInclusionProof, redundant: true, mutate: func(pb *protobundle.Bundle) { proof(pb).LogIndex++ }},
		mutation{name: "entry and proof log index +1", want: verify.CheckInclusionProof, mutate: func(pb *protobundle.Bundle) {
			proof(pb).LogIndex++
			pb.GetVerificationMaterial().GetTlogEntries()[0].LogIndex++
		}},
		mutation{name: "extra proof hash", want: verify.CheckInclusionProof, mutate: func(pb *protobundle.Bundle) {
			proof(pb).Hashes = append(proof(pb).Hashes, make([]byte, 32))
		}},
	)
	for i := range len(proof(pb).GetCheckpoint().GetEnvelope()) {
		ms = append(ms, mutation{name: "checkpoint byte", want: verify.CheckCheckpoint, mutate: func(pb *protobundle.Bundle) {
			cp := proof(pb).Checkpoint
			b := []byte(cp.Envelope)
			flip(b, i)
			cp.Envelope = string(b)
		}})
	}
	return ms
}

type protobundleProof = protorekor.InclusionProof

func TestInteropRejectsTampering(t *testing.T) {
	f := loadFixture(t)
	for _, c := range interopCases {
		t.Run(c.file, func(t *testing.T) {
			orig, err := bundle.Parse(f.bundleBytes(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			for _, m := range mutations(orig.Proto()) {
				pb := proto.Clone(orig.Proto()).(*protobundle.Bundle)
				m.mutate(pb)
				b, err := bundle.FromProto(pb)
				if err != nil {
					t.Fatalf("%s: mutated bundle no longer parses: %v", m.name, err)
				}
				_, err = f.run(b, c, policyFor(c), f.artifact)
				if got := verify.CheckOf(err); got != m.want {
					t.Errorf("%s #%d: failed check %q, want %q (err: %v)", m.name, counts[m.name], got, m.want, err)
				}
				counts[m.name]++
			}
			t.Logf("mutations: %v", counts)
		})
	}
}

func TestInteropRejectsPolicyAndArtifact(t *testing.T) {
	f := loadFixture(t)
	for _, c := range interopCases {
		t.Run(c.file, func(t *testing.T) {
			b, err := bundle.ReadFile(filepath.Join(f.dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			otherID, otherIss := policyFor(c), policyFor(c)
			otherID.Identity = verify.Exact("mallory@example.com")
			otherIss.Issuer = verify.Exact("https://token.actions.githubusercontent.com")
			changed := append([]byte(nil), f.artifact...)
			changed[0] ^= 0x20
			for _, tc := range []struct {
				name     string
				p        verify.Policy
				artifact []byte
				want     verify.Check
			}{
				{"other identity", otherID, f.artifact, verify.CheckIdentity},
				{"other issuer", otherIss, f.artifact, verify.CheckIdentity},
				{"changed artifact", policyFor(c), changed, verify.CheckArtifact},
				{"appended artifact byte", policyFor(c), append(append([]byte(nil), f.artifact...), '\n'), verify.CheckArtifact},
				{"no identity in policy", verify.Policy{Issuer: verify.Exact(c.issuer)}, f.artifact, verify.CheckPolicy},
			} {
				_, err := f.run(b, c, tc.p, tc.artifact)
				if got := verify.CheckOf(err); got != tc.want {
					t.Errorf("%s: failed check %q, want %q (err: %v)", tc.name, got, tc.want, err)
				}
			}
		})
	}
}

func TestInteropRejectsOtherClaims(t *testing.T) {
	f := loadFixture(t)
	load := func(name string) *bundle.Bundle {
		b, err := bundle.Parse(f.bundleBytes(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gh, prov, email := interopCases[3], interopCases[4], interopCases[0]

	// CI extensions pinned by the policy must match exactly.
	for _, c := range []interopCase{gh, prov} {
		p := policyFor(c)
		p.Extensions.SourceRepositoryURI = "https://github.com/acme/other"
		if _, err := f.run(load(c.file), c, p, f.artifact); verify.CheckOf(err) != verify.CheckIdentity {
			t.Errorf("%s: other source repository: %v", c.file, err)
		}
		p = policyFor(c)
		p.Extensions.RunnerEnvironment = "self-hosted"
		if _, err := f.run(load(c.file), c, p, f.artifact); verify.CheckOf(err) != verify.CheckIdentity {
			t.Errorf("%s: other runner environment: %v", c.file, err)
		}
	}

	// A timestamp from the same TSA over another signature is not this
	// bundle's signing time.
	pb := proto.Clone(load(email.file).Proto()).(*protobundle.Bundle)
	pb.VerificationMaterial.TimestampVerificationData = load(gh.file).Proto().GetVerificationMaterial().GetTimestampVerificationData()
	if _, err := f.run(must(bundle.FromProto(pb)), email, policyFor(email), f.artifact); verify.CheckOf(err) != verify.CheckTimestamp {
		t.Errorf("borrowed timestamp: %v", err)
	}
	// A corrupted timestamp token fails the timestamp check.
	pb = proto.Clone(load(email.file).Proto()).(*protobundle.Bundle)
	pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp[200] ^= 1
	if _, err := f.run(must(bundle.FromProto(pb)), email, policyFor(email), f.artifact); verify.CheckOf(err) != verify.CheckTimestamp {
		t.Errorf("corrupted timestamp: %v", err)
	}
	// Without any timestamp a Rekor v2 bundle has no signing time.
	pb = proto.Clone(load(email.file).Proto()).(*protobundle.Bundle)
	pb.VerificationMaterial.TimestampVerificationData = nil
	if _, err := f.run(must(bundle.FromProto(pb)), email, policyFor(email), f.artifact); verify.CheckOf(err) != verify.CheckTimeSource {
		t.Errorf("no timestamp: %v", err)
	}
	// The log entry must record this bundle's certificate: swap in another
	// entry from the same log, with a valid proof of its own.
	pb = proto.Clone(load(email.file).Proto()).(*protobundle.Bundle)
	pb.VerificationMaterial.TlogEntries = load(interopCases[1].file).TlogEntries()
	if _, err := f.run(must(bundle.FromProto(pb)), email, policyFor(email), f.artifact); verify.CheckOf(err) != verify.CheckTlogBody {
		t.Errorf("borrowed log entry: %v", err)
	}

	// Attestations: the predicate type and the payload are covered.
	v := verify.New(f.root)
	d := sha256.Sum256(f.artifact)
	subject := verify.Digest{Algorithm: crypto.SHA256, Value: d[:]}
	if _, err := v.VerifyAttestation(context.Background(), load(prov.file), subject, policyFor(prov), "https://spdx.dev/Document"); verify.CheckOf(err) != verify.CheckStatement {
		t.Errorf("other predicate type: %v", err)
	}
	pb = proto.Clone(load(prov.file).Proto()).(*protobundle.Bundle)
	pb.GetDsseEnvelope().Payload[40] ^= 1
	if _, err := v.VerifyAttestation(context.Background(), must(bundle.FromProto(pb)), subject, policyFor(prov), ""); verify.CheckOf(err) != verify.CheckSignature {
		t.Errorf("changed payload: %v", err)
	}
	// VerifyArtifact on a DSSE bundle checks the artifact as subject.
	if _, err := v.VerifyArtifact(context.Background(), load(prov.file), bytes.NewReader(f.artifact), policyFor(prov)); err != nil {
		t.Errorf("attestation via VerifyArtifact: %v", err)
	}
	if _, err := v.VerifyDigest(context.Background(), load(prov.file), subject, policyFor(prov)); verify.CheckOf(err) != verify.CheckBundle {
		t.Errorf("VerifyDigest on a DSSE bundle: %v", err)
	}

	// Message signatures verify from a digest alone, and only the right one.
	if _, err := v.VerifyDigest(context.Background(), load(email.file), subject, policyFor(email)); err != nil {
		t.Errorf("digest: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if _, err := v.VerifyDigest(context.Background(), load(email.file), verify.Digest{Algorithm: crypto.SHA256, Value: other[:]}, policyFor(email)); verify.CheckOf(err) != verify.CheckArtifact {
		t.Errorf("other digest: %v", err)
	}
	if _, err := v.VerifyAttestation(context.Background(), load(email.file), subject, policyFor(email), ""); verify.CheckOf(err) != verify.CheckBundle {
		t.Errorf("VerifyAttestation on a message signature: %v", err)
	}
}
