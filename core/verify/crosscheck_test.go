package verify_test

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/verify"
)

// sigstoreGoVerdict verifies with sigstore-go v1.3.0, an independent
// implementation, configured as cosign verifies these bundles: one signed
// timestamp, one log entry, no SCTs.
func sigstoreGoVerdict(t *testing.T, tr *sgroot.TrustedRoot, pb *protobundle.Bundle, c interopCase, san, issuer string, artifact []byte) error {
	t.Helper()
	b, err := sgbundle.NewBundle(proto.Clone(pb).(*protobundle.Bundle))
	if err != nil {
		return err
	}
	v, err := sgverify.NewVerifier(tr, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	id, err := sgverify.NewShortCertificateIdentity(issuer, "", san, "")
	if err != nil {
		t.Fatal(err)
	}
	art := sgverify.WithArtifact(bytes.NewReader(artifact))
	if c.dsse {
		d := sha256.Sum256(artifact)
		art = sgverify.WithArtifactDigest("sha256", d[:])
	}
	_, err = v.Verify(b, sgverify.NewPolicy(art, sgverify.WithCertificateIdentity(id)))
	return err
}

func TestCrossCheckWithSigstoreGo(t *testing.T) {
	f := loadFixture(t)
	tr, err := sgroot.NewTrustedRootFromPath(filepath.Join(f.dir, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	changed := append([]byte(nil), f.artifact...)
	changed[3] ^= 0x01
	for _, c := range interopCases {
		t.Run(c.file, func(t *testing.T) {
			orig, err := bundle.Parse(f.bundleBytes(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			type input struct {
				name        string
				pb          *protobundle.Bundle
				san, issuer string
				artifact    []byte
			}
			inputs := []input{
				{"as signed", orig.Proto(), c.san, c.issuer, f.artifact},
				{"other identity", orig.Proto(), "mallory@example.com", c.issuer, f.artifact},
				{"other issuer", orig.Proto(), c.san, "http://127.0.0.1:9999", f.artifact},
				{"changed artifact", orig.Proto(), c.san, c.issuer, changed},
			}
			// A spread of tampered bundles; every 9th mutation keeps it quick.
			// Redundant-field mutations are where the two deliberately differ:
			// assert that difference instead of agreement.
			for i, m := range mutations(orig.Proto()) {
				pb := proto.Clone(orig.Proto()).(*protobundle.Bundle)
				m.mutate(pb)
				if m.redundant {
					b, err := bundle.FromProto(pb)
					if err != nil {
						t.Fatal(err)
					}
					_, ours := f.run(b, c, policyFor(c), f.artifact)
					theirs := sigstoreGoVerdict(t, tr, pb, c, c.san, c.issuer, f.artifact)
					if ours == nil || theirs != nil {
						t.Errorf("%s: expected signet to reject an unsigned proof field sigstore-go ignores; signet %v, sigstore-go %v", m.name, ours, theirs)
					}
					continue
				}
				if i%9 == 0 {
					inputs = append(inputs, input{m.name, pb, c.san, c.issuer, f.artifact})
				}
			}
			accepted := 0
			for _, in := range inputs {
				b, err := bundle.FromProto(in.pb)
				if err != nil {
					t.Fatal(err)
				}
				p := verify.Policy{Identity: verify.Exact(in.san), Issuer: verify.Exact(in.issuer)}
				_, ours := f.run(b, c, p, in.artifact)
				theirs := sigstoreGoVerdict(t, tr, in.pb, c, in.san, in.issuer, in.artifact)
				if (ours == nil) != (theirs == nil) {
					t.Errorf("%s: verdicts differ: signet %v, sigstore-go %v", in.name, ours, theirs)
				}
				if ours == nil {
					accepted++
				}
			}
			if accepted != 1 {
				t.Errorf("signet accepted %d of %d inputs, want only the untouched one", accepted, len(inputs))
			}
		})
	}
}
