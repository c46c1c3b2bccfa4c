package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	ct "github.com/google/certificate-transparency-go"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/timelog"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// attack is one crafted bundle and the verdict it must get.
type attack struct {
	name string
	// json is the bundle as an attacker hands it over; set from pb when empty.
	json []byte
	pb   *protobundle.Bundle
	// artifact is what the verifier is given (the env's artifact when nil).
	artifact []byte
	// attest verifies as an attestation about the artifact's digest.
	attest bool
	// policy overrides the env's identity policy.
	policy *verify.Policy
	// want is the check that must fail; parseErr instead names a refusal
	// by the bundle parser (the bundle never reaches the verifier).
	want     verify.Check
	parseErr string
	// sigstoreGo is empty when sigstore-go v1.3.0 must reject the bundle
	// too. Otherwise sigstore-go accepts it, and this says why signet's
	// refusal is right; the test asserts that sigstore-go still accepts, so
	// a change on either side shows. skipSigstoreGo says why it is not asked.
	sigstoreGo     string
	skipSigstoreGo string
}

func (e *attackEnv) policy() verify.Policy {
	return verify.Policy{Identity: verify.Exact(e.san), Issuer: verify.Exact(e.issuer)}
}

func (e *attackEnv) run(t *testing.T, a attack) {
	t.Helper()
	data := a.json
	if data == nil {
		data = must(protojson.Marshal(a.pb))
	}
	artifact := a.artifact
	if artifact == nil {
		artifact = e.artifact
	}
	p := e.policy()
	if a.policy != nil {
		p = *a.policy
	}
	b, err := bundle.Parse(data)
	switch {
	case a.parseErr != "":
		if err == nil || !strings.Contains(err.Error(), a.parseErr) {
			t.Errorf("%s: parse error %v, want one containing %q", a.name, err, a.parseErr)
		}
	case err != nil:
		t.Errorf("%s: bundle does not parse: %v", a.name, err)
		return
	default:
		v := verify.New(e.root)
		var res *verify.Result
		if a.attest {
			d := sha256.Sum256(artifact)
			res, err = v.VerifyAttestation(context.Background(), b, verify.Digest{Algorithm: crypto.SHA256, Value: d[:]}, p, "")
		} else {
			res, err = v.VerifyArtifact(context.Background(), b, bytes.NewReader(artifact), p)
		}
		if got := verify.CheckOf(err); got != a.want {
			t.Errorf("%s: failed check %q, want %q (err: %v, result %+v)", a.name, got, a.want, err, res)
		} else if err != nil {
			t.Logf("%s: %v", a.name, err)
		}
	}
	if a.skipSigstoreGo != "" || p.Key != nil {
		return
	}
	theirs := e.sigstoreGo(t, data, artifact, a.attest, p)
	rejected := a.want != "" || a.parseErr != ""
	switch {
	case a.sigstoreGo == "" && rejected && theirs == nil:
		t.Errorf("%s: sigstore-go accepts what signet refuses; name the difference", a.name)
	case a.sigstoreGo != "" && theirs != nil:
		t.Errorf("%s: sigstore-go now rejects (%v); the recorded difference (%s) is gone", a.name, theirs, a.sigstoreGo)
	case !rejected && theirs != nil:
		t.Errorf("%s: sigstore-go rejects what signet accepts: %v", a.name, theirs)
	}
}

// sigstoreGo verifies as cosign does by default: one SCT, one signed
// timestamp, one log entry, the identity given exactly.
func (e *attackEnv) sigstoreGo(t *testing.T, data, artifact []byte, attest bool, p verify.Policy) error {
	t.Helper()
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return err
	}
	v := must(sgverify.NewVerifier(e.sgRoot, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1)))
	id := must(sgverify.NewShortCertificateIdentity(strings.Trim(p.Issuer.String(), "/"), "", strings.Trim(p.Identity.String(), "/"), ""))
	art := sgverify.WithArtifact(bytes.NewReader(artifact))
	if attest {
		d := sha256.Sum256(artifact)
		art = sgverify.WithArtifactDigest("sha256", d[:])
	}
	_, err := v.Verify(&b, sgverify.NewPolicy(art, sgverify.WithCertificateIdentity(id)))
	return err
}

func withPolicyOf(e *attackEnv, edit func(*verify.Policy)) *verify.Policy {
	p := e.policy()
	edit(&p)
	return &p
}

// TestAttackCorpus crafts, against a real signet server, one bundle per
// check the verifier makes, each violating that check and nothing before it,
// and asserts the check that names the failure; each bundle also goes to
// sigstore-go, and every place the two disagree is named with the reason.
func TestAttackCorpus(t *testing.T) {
	e := newAttackEnv(t)
	ctx := context.Background()
	good := e.keylessBundle(t, e.artifact)
	att := e.attestationBundle(t, e.artifact, "https://example.com/test-result/v1")
	e.run(t, attack{name: "genuine message signature", pb: good})
	e.run(t, attack{name: "genuine attestation", pb: att, attest: true})

	var corpus []attack
	add := func(a ...attack) { corpus = append(corpus, a...) }

	// --- The hole: a log entry that was never logged. ---
	sizeBefore := e.logSize(t)
	unlogged := func(mediaType string, base *protobundle.Bundle) *protobundle.Bundle {
		pb := clone(base)
		pb.MediaType = mediaType
		en := pb.VerificationMaterial.TlogEntries[0]
		en.LogIndex = 999999
		en.InclusionProof = nil
		en.IntegratedTime = 0
		en.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: []byte("garbage, not a signature")}
		return pb
	}
	add(
		attack{name: "never logged: v0.1, garbage SET, no integratedTime, genuine TSA timestamp", pb: unlogged(bundle.MediaTypeV01, good), want: verify.CheckInclusionPromise},
		attack{name: "never logged: v0.1 attestation", pb: unlogged(bundle.MediaTypeV01, att), attest: true, want: verify.CheckInclusionPromise},
		attack{name: "never logged: v0.1, garbage SET with an integratedTime", want: verify.CheckInclusionPromise, pb: func() *protobundle.Bundle {
			pb := unlogged(bundle.MediaTypeV01, good)
			pb.VerificationMaterial.TlogEntries[0].IntegratedTime = time.Now().Unix()
			return pb
		}()},
		attack{name: "never logged: v0.1 without any promise", parseErr: "inclusionPromise is missing", pb: func() *protobundle.Bundle {
			pb := unlogged(bundle.MediaTypeV01, good)
			pb.VerificationMaterial.TlogEntries[0].InclusionPromise = nil
			return pb
		}()},
		attack{name: "never logged: v0.3 without the inclusion proof", parseErr: "inclusionProof is missing", pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TlogEntries[0].InclusionProof = nil
			return pb
		}()},
		attack{name: "v0.3 entry claiming an unsigned integratedTime", want: verify.CheckInclusionPromise,
			sigstoreGo: "sigstore-go ignores an integratedTime no promise covers (it uses it only to check the certificate's validity); signet refuses an unsigned time claim outright", pb: func() *protobundle.Bundle {
				pb := clone(good)
				pb.VerificationMaterial.TlogEntries[0].IntegratedTime = time.Now().Unix()
				return pb
			}()},
	)

	// --- Leaf certificates a code-signing verifier must refuse, from the trusted CA. ---
	profile := func(name string, edit func(*x509.Certificate), why string) attack {
		key, cert := e.issue(t, edit, nil, nil)
		return attack{name: "leaf " + name, pb: e.assemble(t, key, cert, e.artifact), want: verify.CheckCertificateProfile, sigstoreGo: why}
	}
	add(
		profile("with basicConstraints CA:TRUE", func(c *x509.Certificate) {
			c.BasicConstraintsValid, c.IsCA = true, true
			c.KeyUsage |= x509.KeyUsageCertSign
		}, "sigstore-go leaves leaf basic constraints to crypto/x509, which does not check them on the leaf; a leaf that can issue certificates is not a Fulcio signing certificate"),
		profile("without extended key usage", func(c *x509.Certificate) { c.ExtKeyUsage = nil },
			"crypto/x509 reads an absent extended key usage as any usage, so sigstore-go accepts it; Fulcio's profile requires codeSigning"),
		profile("with anyExtendedKeyUsage", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny} },
			"crypto/x509 lets anyExtendedKeyUsage satisfy codeSigning; Fulcio's profile names codeSigning only"),
		profile("with anyExtendedKeyUsage beside codeSigning", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageAny}
		}, "as above: the certificate claims every usage"),
		profile("with key usage certSign only", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign },
			"crypto/x509 does not check key usage; a leaf without digitalSignature may not sign"),
		profile("without key usage", func(c *x509.Certificate) { c.KeyUsage = 0 },
			"as above: Fulcio certificates always carry digitalSignature"),
	)

	// --- Certificates that must not chain, timestamps that must not count. ---
	otherCAKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	otherCATmpl := &x509.Certificate{
		SerialNumber: e.caCert.SerialNumber, Subject: e.caCert.Subject, Issuer: e.caCert.Issuer,
		NotBefore: e.caCert.NotBefore, NotAfter: e.caCert.NotAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		SubjectKeyId: e.caCert.SubjectKeyId,
	}
	otherCA := must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, otherCATmpl, otherCATmpl, &otherCAKey.PublicKey, otherCAKey))))
	{
		key, cert := e.issue(t, nil, otherCA, otherCAKey)
		add(attack{name: "leaf from another CA with the trusted CA's names and key ID", pb: e.assemble(t, key, cert, e.artifact), want: verify.CheckCertificateChain})
	}
	{
		key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		tmpl := e.leafTemplate(t)
		tmpl.Subject, tmpl.Issuer = e.caCert.Subject, e.caCert.Subject
		cert := must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))))
		add(attack{name: "self-signed leaf with copied names", pb: e.assemble(t, key, cert, e.artifact), want: verify.CheckCertificateChain})
	}
	{
		key, cert := e.issue(t, func(c *x509.Certificate) { c.ExtraExtensions = nil }, nil, nil)
		add(attack{name: "leaf without the OIDC issuer extension", pb: e.assemble(t, key, cert, e.artifact), want: verify.CheckIdentity})
	}
	withToken := func(base *protobundle.Bundle, token []byte) *protobundle.Bundle {
		pb := clone(base)
		pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp = token
		return pb
	}
	sig := good.GetMessageSignature().GetSignature()
	cert := must(x509.ParseCertificate(good.GetVerificationMaterial().GetCertificate().GetRawBytes()))
	untrustedTSAKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	untrustedTSA := &x509.Certificate{
		SerialNumber: e.tsaChain[0].SerialNumber, Subject: e.tsaChain[0].Subject, NotBefore: e.tsaChain[0].NotBefore, NotAfter: e.tsaChain[0].NotAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{}, // timeStamping must be critical: set below
	}
	untrustedTSA.ExtKeyUsage = nil
	untrustedTSA.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: must(asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}}))}}
	untrustedTSACert := must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, untrustedTSA, untrustedTSA, &untrustedTSAKey.PublicKey, untrustedTSAKey))))
	add(
		attack{name: "timestamp with a SHA-1 imprint from the trusted TSA", pb: withToken(good, tsaToken(t, e.tsaKey, e.tsaChain, crypto.SHA1, sig, time.Now())), want: verify.CheckTimestamp},
		attack{name: "timestamp after the certificate expired", pb: withToken(good, tsaToken(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, cert.NotAfter.Add(time.Hour))), want: verify.CheckCertificateChain},
		attack{name: "timestamp before the certificate is valid", want: verify.CheckCertificateChain, pb: func() *protobundle.Bundle {
			key, cert := e.issue(t, func(c *x509.Certificate) { c.NotBefore = time.Now().Add(5 * time.Minute) }, nil, nil)
			return e.assemble(t, key, cert, e.artifact)
		}()},
		attack{name: "timestamp by an untrusted TSA with the trusted TSA's names", pb: withToken(good, tsaToken(t, untrustedTSAKey, []*x509.Certificate{untrustedTSACert}, crypto.SHA256, sig, time.Now())), want: verify.CheckTimestamp},
		attack{name: "timestamp from the trusted TSA over other bytes", pb: withToken(good, must(e.tsa.Timestamp(ctx, []byte("another signature"))).Response), want: verify.CheckTimestamp},
		attack{name: "timestamp token as the TSA issues it (baseline for the edits below)", pb: withToken(good, tsaToken(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now()))},
		attack{name: "timestamp token: digestAlgorithms lists SHA-1 too (unsigned)", want: verify.CheckTimestamp, sigstoreGo: unsignedTokenPart,
			pb: withToken(good, tsaTokenEdited(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now(), func(sd *pkcs7.SignedData) {
				sd.GetSignedData().DigestAlgorithmIdentifiers = append(sd.GetSignedData().DigestAlgorithmIdentifiers, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}})
			}))},
		attack{name: "timestamp token: eContentType is id-data (unsigned)", want: verify.CheckTimestamp, sigstoreGo: unsignedTokenPart,
			pb: withToken(good, tsaTokenEdited(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now(), func(sd *pkcs7.SignedData) {
				sd.GetSignedData().ContentInfo.ContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
			}))},
		attack{name: "timestamp token: signerInfo version 2 (unsigned)", want: verify.CheckTimestamp, sigstoreGo: unsignedTokenPart,
			pb: withToken(good, tsaTokenEdited(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now(), func(sd *pkcs7.SignedData) {
				sd.GetSignedData().SignerInfos[0].Version = 2
			}))},
		attack{name: "timestamp token: SignedData version 1 (unsigned)", want: verify.CheckTimestamp, sigstoreGo: unsignedTokenPart,
			pb: withToken(good, tsaTokenEdited(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now(), func(sd *pkcs7.SignedData) {
				sd.GetSignedData().Version = 1
			}))},
		attack{name: "timestamp token: embeds a certificate outside the TSA chain (unsigned)", want: verify.CheckTimestamp, sigstoreGo: unsignedTokenPart,
			pb: withToken(good, tsaTokenEdited(t, e.tsaKey, e.tsaChain, crypto.SHA256, sig, time.Now(), func(sd *pkcs7.SignedData) {
				sd.AddCertificate(untrustedTSACert)
			}))},
		attack{name: "timestamp response from the real TSA in BER (non-minimal outer length)", want: verify.CheckTimestamp,
			pb: withToken(good, berOuterLength(t, good.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()[0].GetSignedTimestamp()))},
		attack{name: "timestamp response from the real TSA with a trailing byte", want: verify.CheckTimestamp,
			pb: withToken(good, append(bytes.Clone(good.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()[0].GetSignedTimestamp()), 0))},
		attack{name: "no timestamp at all", want: verify.CheckTimeSource, pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TimestampVerificationData = nil
			return pb
		}()},
	)

	// --- Log entries from elsewhere, proofs for other leaves, forged checkpoints. ---
	other := servertest.Start(t, t.TempDir(), "--dev-oidc")
	otherBundle := keylessAt(t, other, e.artifact)
	otherArtifact := e.keylessBundle(t, []byte("another artifact\n"))
	sameSigned := e.keylessBundle(t, e.artifact) // another signature (new key, new cert) over the same artifact
	withEntry := func(entry *protorekor.TransparencyLogEntry) *protobundle.Bundle {
		pb := clone(good)
		pb.VerificationMaterial.TlogEntries = []*protorekor.TransparencyLogEntry{entry}
		return pb
	}
	entryOf := func(pb *protobundle.Bundle) *protorekor.TransparencyLogEntry {
		return clone(pb).VerificationMaterial.TlogEntries[0]
	}
	add(
		attack{name: "entry from a log the trusted root does not list", pb: withEntry(entryOf(otherBundle)), want: verify.CheckTlog},
		attack{name: "entry naming another digest (genuine entry of another artifact)", pb: withEntry(entryOf(otherArtifact)), want: verify.CheckTlogBody},
		attack{name: "entry naming another certificate and signature (genuine entry of another signing)", pb: withEntry(entryOf(sameSigned)), want: verify.CheckTlogBody},
		attack{name: "entry naming another certificate for the same key and signature", want: verify.CheckTlogBody, pb: func() *protobundle.Bundle {
			key, certA := e.issue(t, nil, nil, nil)
			pb := e.assemble(t, key, certA, e.artifact)
			tmpl := e.leafTemplate(t) // a second certificate for the same key, logged in CT as the CA would
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, sctListExtension(t, e.logPrecert(t, tmpl, &key.PublicKey)))
			certB := must(x509.CreateCertificate(rand.Reader, tmpl, e.caCert, &key.PublicKey, e.caKey))
			pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: certB}}
			return pb
		}()},
		attack{name: "checkpoint of another log under the same origin", want: verify.CheckCheckpoint, pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TlogEntries[0].InclusionProof.Checkpoint = entryOf(otherBundle).InclusionProof.Checkpoint
			return pb
		}()},
		attack{name: "a valid proof for another leaf", want: verify.CheckInclusionProof, pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TlogEntries[0].InclusionProof = entryOf(otherArtifact).InclusionProof
			pb.VerificationMaterial.TlogEntries[0].LogIndex = pb.VerificationMaterial.TlogEntries[0].InclusionProof.LogIndex
			return pb
		}()},
		attack{name: "the same entry twice", want: verify.CheckTlog, pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TlogEntries = append(pb.VerificationMaterial.TlogEntries, entryOf(good))
			return pb
		}()},
		attack{name: "checkpoint signed by the log key under a shard origin", want: verify.CheckCheckpoint, pb: func() *protobundle.Bundle {
			pb := clone(good)
			resign(t, pb.VerificationMaterial.TlogEntries[0], e.logSigner(), func(c *flog.Checkpoint) { c.Origin += " - 42" })
			return pb
		}()},
		attack{name: "checkpoint signed by the log key with another origin", want: verify.CheckCheckpoint, pb: func() *protobundle.Bundle {
			pb := clone(good)
			resign(t, pb.VerificationMaterial.TlogEntries[0], e.logSigner(), func(c *flog.Checkpoint) { c.Origin = "rekor.example.com" })
			return pb
		}()},
		attack{name: "checkpoint signed by the log key for another tree size", want: verify.CheckCheckpoint, pb: func() *protobundle.Bundle {
			pb := clone(good)
			resign(t, pb.VerificationMaterial.TlogEntries[0], e.logSigner(), func(c *flog.Checkpoint) { c.Size++ })
			return pb
		}()},
		attack{name: "checkpoint signed by another key under the trusted key's name and key ID", want: verify.CheckCheckpoint, pb: func() *protobundle.Bundle {
			pb := clone(good)
			_, forger, _ := ed25519.GenerateKey(rand.Reader)
			s := e.logSigner()
			s.key = forger
			resign(t, pb.VerificationMaterial.TlogEntries[0], s, func(*flog.Checkpoint) {})
			return pb
		}()},
	)

	// --- Media types and JSON. ---
	goodJSON := must(protojson.Marshal(good))
	withMediaType := func(mt string) *protobundle.Bundle {
		pb := clone(good)
		pb.MediaType = mt
		return pb
	}
	chainV03 := clone(good)
	chainV03.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{
		Certificates: []*protocommon.X509Certificate{good.VerificationMaterial.GetCertificate()},
	}}
	add(
		attack{name: "media type v0.3 alternative spelling", pb: withMediaType("application/vnd.dev.sigstore.bundle+json;version=0.3")},
		attack{name: "media type v0.2 with a leaf certificate", pb: withMediaType(bundle.MediaTypeV02)},
		attack{name: "media type unknown version", pb: withMediaType("application/vnd.dev.sigstore.bundle.v0.4+json"), parseErr: "unsupported mediaType"},
		attack{name: "media type in upper case", pb: withMediaType(strings.ToUpper(bundle.MediaTypeV03)), parseErr: "unsupported mediaType"},
		attack{name: "media type with trailing space", pb: withMediaType(bundle.MediaTypeV03 + " "), parseErr: "unsupported mediaType"},
		attack{name: "media type missing", pb: withMediaType(""), parseErr: "mediaType is missing"},
		attack{name: "v0.3 with a certificate chain", pb: chainV03, parseErr: "x509CertificateChain is not allowed in v0.3"},
		attack{name: "unknown JSON field", json: bytes.Replace(goodJSON, []byte(`{"mediaType"`), []byte(`{"extra":1,"mediaType"`), 1), parseErr: "unknown field"},
		attack{name: "duplicate JSON field", json: bytes.Replace(goodJSON, []byte(`{"mediaType"`), []byte(`{"mediaType":"x","mediaType"`), 1), parseErr: "duplicate field"},
	)

	// --- Entry bodies: the verifier reads the body before the proof. ---
	// sigstore-go rebuilds a Rekor v2 leaf from the bundle's signature, key
	// and digest and never reads canonicalizedBody for the proof; signet
	// proves the body it was given and reports what it says, so it requires
	// exactly the bytes the log wrote.
	const v2BodyUnread = "sigstore-go does not read a Rekor v2 entry's canonicalizedBody (it rebuilds the leaf from the bundle); signet proves and reports the body, so it must be the log's canonical bytes"
	body := func(edit func([]byte) []byte) *protobundle.Bundle {
		pb := clone(good)
		en := pb.VerificationMaterial.TlogEntries[0]
		en.CanonicalizedBody = edit(en.CanonicalizedBody)
		return pb
	}
	add(
		attack{name: "body with spec twice", want: verify.CheckTlogBody, pb: body(func(b []byte) []byte {
			i := bytes.Index(b, []byte(`,"spec":`))
			return append(append(append([]byte{}, b[:len(b)-1]...), b[i:len(b)-1]...), '}')
		})},
		attack{name: "body with a case-folded key", want: verify.CheckTlogBody, pb: body(func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"spec"`), []byte(`"Spec"`), 1)
		})},
		attack{name: "body with whitespace", want: verify.CheckTlogBody, sigstoreGo: v2BodyUnread, pb: body(func(b []byte) []byte {
			return bytes.Replace(b, []byte(`,"kind"`), []byte(`, "kind"`), 1)
		})},
		attack{name: "body of another kind version than kindVersion", want: verify.CheckTlogBody,
			sigstoreGo: "sigstore-go takes the kind from the body and ignores the unsigned kindVersion; signet requires the bundle's description of its entry to be true", pb: func() *protobundle.Bundle {
				pb := clone(good)
				pb.VerificationMaterial.TlogEntries[0].KindVersion.Version = "0.0.1"
				return pb
			}()},
	)

	// --- DSSE and statements. ---
	otherType := func() *protobundle.Bundle {
		pb := clone(att)
		pb.GetDsseEnvelope().PayloadType = "application/json"
		return pb
	}()
	add(
		attack{name: "DSSE payload changed", attest: true, want: verify.CheckSignature, pb: func() *protobundle.Bundle {
			pb := clone(att)
			pb.GetDsseEnvelope().Payload = bytes.Replace(pb.GetDsseEnvelope().Payload, []byte(`true`), []byte(`fals`), 1)
			return pb
		}()},
		attack{name: "DSSE payloadType changed", attest: true, pb: otherType, want: verify.CheckSignature},
		attack{name: "attestation about another artifact", attest: true, pb: att, artifact: []byte("not the subject\n"), want: verify.CheckArtifact},
		attack{name: "message signature over another artifact", pb: good, artifact: []byte("not the artifact\n"), want: verify.CheckArtifact},
		attack{name: "image signature copied to another image", pb: e.keylessBundle(t, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:aaaa"}}`)),
			artifact: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:bbbb"}}`), want: verify.CheckArtifact},
	)
	{
		// A signature over a non-in-toto payload type, genuinely logged.
		key, cert := e.issue(t, nil, nil, nil)
		pb := e.assembleDSSE(t, key, cert, "application/json", []byte(`{"subject":"app.tar.gz"}`))
		add(attack{name: "DSSE of another payload type, genuinely signed and logged", attest: true, pb: pb, want: verify.CheckStatement})
	}

	// --- Rekor v2 dsse entries (sigstore-js 5, actions/attest). ---
	{
		d := sha256.Sum256(e.artifact)
		statement := func(digest string) []byte {
			return must(intoto.MarshalStatement(must(intoto.NewStatement([]intoto.Subject{{Name: "app.tar.gz", Digest: map[string]string{"sha256": digest}}}, "https://example.com/test-result/v1", []byte(`{"passed":true}`)))))
		}
		key, cert := e.issue(t, nil, nil, nil)
		genuine := e.assembleDSSEEntry(t, key, cert, intoto.PayloadType, statement(hex.EncodeToString(d[:])))
		const noDSSE = "sigstore-go v1.3.0 reads only hashedrekord Rekor v2 bodies and refuses every dsse v0.0.2 entry as it loads the bundle"
		add(attack{name: "attestation logged as a dsse v0.0.2 entry", attest: true, pb: genuine, skipSigstoreGo: noDSSE})
		// The same signer's genuine dsse entry of another statement.
		key2, cert2 := key, cert
		otherEntry := e.assembleDSSEEntry(t, key2, cert2, intoto.PayloadType, statement(strings.Repeat("ab", 32)))
		swapped := clone(genuine)
		swapped.VerificationMaterial.TlogEntries = clone(otherEntry).VerificationMaterial.TlogEntries
		add(attack{name: "dsse entry of another envelope by the same signer", attest: true, pb: swapped, want: verify.CheckTlogBody, skipSigstoreGo: noDSSE})
		// The envelope's payload changed under a genuine entry: the
		// signature check fails first, as for any envelope.
		edited := clone(genuine)
		edited.GetDsseEnvelope().Payload = statement(strings.Repeat("cd", 32))
		add(attack{name: "dsse entry with the envelope's payload replaced", attest: true, pb: edited, want: verify.CheckSignature, skipSigstoreGo: noDSSE})
	}

	// --- Certificate transparency. ---
	{
		// The real CA's certificate, never logged.
		key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		tmpl := e.leafTemplate(t)
		unlogged := must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, tmpl, e.caCert, &key.PublicKey, e.caKey))))
		add(attack{name: "certificate with no SCT", pb: e.assemble(t, key, unlogged, e.artifact), want: verify.CheckSCT})

		withSCT := func(sct *ct.SignedCertificateTimestamp, tmpl *x509.Certificate, key *ecdsa.PrivateKey) *x509.Certificate {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, sctListExtension(t, sct))
			return must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, tmpl, e.caCert, &key.PublicKey, e.caKey))))
		}
		// A genuine SCT, but for another certificate of the same CA.
		other := e.leafTemplate(t)
		sct := e.logPrecert(t, other, &must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).PublicKey)
		k2 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		add(attack{name: "SCT of another certificate", pb: e.assemble(t, k2, withSCT(sct, e.leafTemplate(t), k2), e.artifact), want: verify.CheckSCT})

		// An SCT from a CT log the trusted root does not name.
		k3 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		t3 := e.leafTemplate(t)
		foreign := e.signSCT(t, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), t3, &k3.PublicKey, time.Now())
		add(attack{name: "SCT from an unknown CT log", pb: e.assemble(t, k3, withSCT(foreign, t3, k3), e.artifact), want: verify.CheckSCT})

		// Signed by the real CT log key, dated before the key's validity.
		k4 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		t4 := e.leafTemplate(t)
		var ctStart time.Time
		for _, l := range e.root.CTLogs {
			ctStart = l.ValidFor.Start
		}
		early := e.signSCT(t, e.ctKey, t4, &k4.PublicKey, ctStart.Add(-time.Hour))
		add(attack{name: "SCT dated before the CT log key's validity", pb: e.assemble(t, k4, withSCT(early, t4, k4), e.artifact), want: verify.CheckSCT})

		// The same, dated now, is what a logged certificate carries: the
		// crafting above is faithful.
		k5 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		t5 := e.leafTemplate(t)
		now := e.signSCT(t, e.ctKey, t5, &k5.PublicKey, time.Now())
		add(attack{name: "SCT crafted with the CT log key, dated now (control)", pb: e.assemble(t, k5, withSCT(now, t5, k5), e.artifact)})

		// --insecure-ignore-sct accepts the unlogged certificate.
		add(attack{name: "certificate with no SCT, SCTs ignored", pb: e.assemble(t, key, unlogged, e.artifact), skipSigstoreGo: "asked with SCTs required",
			policy: withPolicyOf(e, func(p *verify.Policy) { p.IgnoreSCT = true })})
	}

	// --- Identity, issuer and extensions. ---
	withPolicy := func(edit func(*verify.Policy)) *verify.Policy { return withPolicyOf(e, edit) }
	add(
		attack{name: "other identity", pb: good, want: verify.CheckIdentity, policy: withPolicy(func(p *verify.Policy) { p.Identity = verify.Exact(strings.Replace(e.san, "acme", "evil", 1)) })},
		attack{name: "other issuer", pb: good, want: verify.CheckIdentity, policy: withPolicy(func(p *verify.Policy) { p.Issuer = verify.Exact("https://token.actions.githubusercontent.com") })},
		attack{name: "identity prefix is not the identity", pb: good, want: verify.CheckIdentity, policy: withPolicy(func(p *verify.Policy) { p.Identity = verify.Exact(strings.TrimSuffix(e.san, "main")) })},
		attack{name: "other source repository extension", pb: good, want: verify.CheckIdentity, skipSigstoreGo: "the corpus asks sigstore-go for SAN and issuer only",
			policy: withPolicy(func(p *verify.Policy) { p.Extensions.SourceRepositoryURI = "https://github.com/evil/app" })},
	)
	{
		key, cert := e.issue(t, func(c *x509.Certificate) {
			c.ExtraExtensions = must(certext.Extensions{Issuer: e.issuer}.Render()) // no CI extensions at all
		}, nil, nil)
		add(attack{name: "extension pinned by the policy is absent", pb: e.assemble(t, key, cert, e.artifact), want: verify.CheckIdentity, skipSigstoreGo: "the corpus asks sigstore-go for SAN and issuer only",
			policy: withPolicy(func(p *verify.Policy) { p.Extensions.SourceRepositoryURI = "https://github.com/acme/app" })})
	}

	// --- Key-mode confusion. ---
	someKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	keyBundle := e.keyBundle(t, someKey)
	add(
		attack{name: "keyless bundle verified against another trusted key", pb: good, want: verify.CheckKey, policy: &verify.Policy{Key: &someKey.PublicKey}},
		attack{name: "key bundle verified with an identity policy", pb: keyBundle, want: verify.CheckKey, skipSigstoreGo: "sigstore-go needs the key in its trusted material to read a key bundle"},
		attack{name: "key bundle verified against another key", pb: keyBundle, want: verify.CheckKey, policy: &verify.Policy{Key: &must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).PublicKey}},
		attack{name: "key bundle verified against its key", pb: keyBundle, policy: &verify.Policy{Key: &someKey.PublicKey}},
		attack{name: "key bundle whose entry logs a certificate", want: verify.CheckTlogBody, policy: &verify.Policy{Key: &someKey.PublicKey}, pb: func() *protobundle.Bundle {
			pb := clone(keyBundle)
			pb.VerificationMaterial.TlogEntries = entryOfAll(good)
			return pb
		}()},
	)

	// --- Time transparency: the log entry a timestamp response carries. ---
	// sigstore-go reads only the token, so it accepts each of these.
	tsOf := func(pb *protobundle.Bundle) []byte {
		return pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp
	}
	withTimestampEntry := func(edit func(*protorekor.TransparencyLogEntry)) *protobundle.Bundle {
		pb := clone(good)
		raw := must(timelog.Extract(tsOf(pb)))
		var en protorekor.TransparencyLogEntry
		if err := protojson.Unmarshal(raw, &en); err != nil {
			t.Fatal(err)
		}
		edit(&en)
		resp := must(timelog.Embed(stripStatusString(t, tsOf(pb)), must(protojson.Marshal(&en))))
		pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp = resp
		return pb
	}
	otherTS := e.keylessBundle(t, []byte("another artifact, another timestamp"))
	const tsLogDiff = "sigstore-go ignores the response's statusString, where the timestamp's log entry travels (core/timelog)"
	add(
		attack{name: "timestamp log entry of another timestamp", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: func() *protobundle.Bundle {
			pb := clone(good)
			entry := must(timelog.Extract(tsOf(otherTS)))
			pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp = must(timelog.Embed(stripStatusString(t, tsOf(pb)), entry))
			return pb
		}()},
		attack{name: "timestamp log entry with a proof hash changed", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: withTimestampEntry(func(en *protorekor.TransparencyLogEntry) {
			en.InclusionProof.Hashes[0][0] ^= 1
		})},
		attack{name: "timestamp log entry without its inclusion proof", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: withTimestampEntry(func(en *protorekor.TransparencyLogEntry) {
			en.InclusionProof = nil
		})},
		attack{name: "timestamp log entry naming a log the root does not list", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: withTimestampEntry(func(en *protorekor.TransparencyLogEntry) {
			en.LogId.KeyId = bytes.Repeat([]byte{7}, 32)
		})},
		attack{name: "timestamp log entry with its checkpoint re-signed under another size", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: withTimestampEntry(func(en *protorekor.TransparencyLogEntry) {
			resign(t, en, e.logSigner(), func(c *flog.Checkpoint) { c.Size++ })
		})},
		attack{name: "timestamp log entry that is not JSON", want: verify.CheckTimestampLog, sigstoreGo: tsLogDiff, pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp = must(timelog.Embed(stripStatusString(t, tsOf(pb)), []byte("not json")))
			return pb
		}()},
		// Without the string the timestamp is one that was not logged,
		// which the verifier accepts as any TSA's timestamp.
		attack{name: "timestamp response with its log entry removed", pb: func() *protobundle.Bundle {
			pb := clone(good)
			pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp = stripStatusString(t, tsOf(pb))
			return pb
		}()},
	)

	for _, a := range corpus {
		e.run(t, a)
	}
	// Nothing above was appended by verifying: the only entries are the ones
	// the test itself logged (each genuine signing logs one).
	if after := e.logSize(t); after < sizeBefore {
		t.Fatalf("log shrank from %d to %d", sizeBefore, after)
	}
	t.Logf("%d crafted bundles", len(corpus))
}

// unsignedTokenPart is why sigstore-go accepts some timestamp token edits.
const unsignedTokenPart = "sigstore-go checks the TSA's signature and the fields it reads, not the parts of the CMS structure nobody signed; signet accepts only the exact DER a TSA signs, so one token has one spelling"

// berOuterLength re-encodes the outermost length of a DER element in a
// longer form than needed: valid BER, not DER.
func berOuterLength(t *testing.T, der []byte) []byte {
	t.Helper()
	if der[1] != 0x82 {
		t.Fatalf("outer length form %#x, want 0x82", der[1])
	}
	return append([]byte{der[0], 0x83, 0x00}, der[2:]...)
}

func entryOfAll(pb *protobundle.Bundle) []*protorekor.TransparencyLogEntry {
	return clone(pb).VerificationMaterial.TlogEntries
}

// TestNeverLoggedEntryLeavesLogUnchanged is the reported hole end to end:
// the crafted entry claims index 999999 of a log whose checkpoint shows no
// such entry; the verifier refuses it and the log did not grow.
func TestNeverLoggedEntryLeavesLogUnchanged(t *testing.T) {
	e := newAttackEnv(t)
	good := e.keylessBundle(t, e.artifact)
	before := e.logSize(t)
	pb := clone(good)
	pb.MediaType = bundle.MediaTypeV01
	en := pb.VerificationMaterial.TlogEntries[0]
	en.LogIndex, en.InclusionProof, en.IntegratedTime = 999999, nil, 0
	en.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: []byte{0x30, 0x00}}
	b := must(bundle.FromProto(pb))
	res, err := verify.New(e.root).VerifyArtifact(context.Background(), b, bytes.NewReader(e.artifact), e.policy())
	if verify.CheckOf(err) != verify.CheckInclusionPromise {
		t.Fatalf("verified %+v, err %v; want the inclusion promise refused", res, err)
	}
	if before >= 999999 {
		t.Fatalf("log has %d entries; the test needs index 999999 to be beyond it", before)
	}
	if after := e.logSize(t); after != before {
		t.Fatalf("log size changed from %d to %d while only verifying", before, after)
	}
	// The same entry with its genuine proof verifies: the refusal is about
	// the proof, not the rest of the bundle.
	if _, err := verify.New(e.root).VerifyArtifact(context.Background(), must(bundle.FromProto(good)), bytes.NewReader(e.artifact), e.policy()); err != nil {
		t.Fatal(err)
	}
}

// TestTrustedRootValidityWindows: a genuine bundle stops verifying when the
// trusted root says the CA, the TSA or the log key was not valid at the
// signing time (a rotated-out key), and the failure names the party.
func TestTrustedRootValidityWindows(t *testing.T) {
	e := newAttackEnv(t)
	good := must(bundle.FromProto(e.keylessBundle(t, e.artifact)))
	later := timestamppb.New(time.Now().Add(time.Hour))
	for _, c := range []struct {
		name string
		edit func(tr *prototrust.TrustedRoot)
		want verify.Check
	}{
		{"as served", func(*prototrust.TrustedRoot) {}, ""},
		{"CA valid only from later", func(tr *prototrust.TrustedRoot) { tr.CertificateAuthorities[0].ValidFor.Start = later }, verify.CheckCertificateChain},
		{"TSA valid only from later", func(tr *prototrust.TrustedRoot) { tr.TimestampAuthorities[0].ValidFor.Start = later }, verify.CheckTimestamp},
		{"log key valid only from later", func(tr *prototrust.TrustedRoot) { tr.Tlogs[0].PublicKey.ValidFor.Start = later }, verify.CheckTlog},
		{"log key expired before signing", func(tr *prototrust.TrustedRoot) {
			tr.Tlogs[0].PublicKey.ValidFor = &protocommon.TimeRange{Start: timestamppb.New(time.Now().Add(-2 * time.Hour)), End: timestamppb.New(time.Now().Add(-time.Hour))}
		}, verify.CheckTlog},
		{"no policy identity", func(*prototrust.TrustedRoot) {}, verify.CheckPolicy},
	} {
		var tr prototrust.TrustedRoot
		if err := protojson.Unmarshal(e.trJSON, &tr); err != nil {
			t.Fatal(err)
		}
		c.edit(&tr)
		root := must(trust.FromProto(&tr))
		p := e.policy()
		if c.want == verify.CheckPolicy {
			p.Identity = verify.Matcher{}
		}
		_, err := verify.New(root).VerifyArtifact(context.Background(), good, bytes.NewReader(e.artifact), p)
		if got := verify.CheckOf(err); got != c.want {
			t.Errorf("%s: failed check %q, want %q (%v)", c.name, got, c.want, err)
		}
	}
}

// stripStatusString is a TimeStampResp without its statusString: the
// response as a TSA that logs nothing answers it.
func stripStatusString(t *testing.T, resp []byte) []byte {
	t.Helper()
	in := cryptobyte.String(resp)
	var top, status, st, token cryptobyte.String
	if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !top.ReadASN1(&status, cbasn1.SEQUENCE) || !status.ReadASN1Element(&st, cbasn1.INTEGER) || !top.ReadASN1Element(&token, cbasn1.SEQUENCE) {
		t.Fatal("not a TimeStampResp")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(st) })
		b.AddBytes(token)
	})
	return must(b.Bytes())
}
