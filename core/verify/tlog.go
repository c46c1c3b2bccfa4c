package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/core/trust"
)

// loggedSignature is what a log entry body commits to, whatever its kind.
type loggedSignature struct {
	kind, version string
	// digest is the signed digest (hashedrekord) or the DSSE payload hash
	// (dsse, intoto); payloadHash tells which.
	digestAlg   crypto.Hash
	digest      []byte
	payloadHash bool
	// sigs pairs each logged signature with its verifier (certificate DER).
	sigs []loggedSig
}

type loggedSig struct {
	sig      []byte
	certDER  []byte
	keyBytes []byte // set instead of certDER when a bare public key was logged
}

// Rekor v2 bodies are protojson of rekor-tiles' Entry message. The body
// types below declare their fields in RFC 8785 key order, so that
// encoding/json writes the canonical form and requireCanonical needs no
// canonicalizer (which cost a tenth of a verification).
type v2Body struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		DsseV002 *struct {
			PayloadHash v2Hash  `json:"payloadHash"`
			Signatures  []v2Sig `json:"signatures"`
		} `json:"dsseV002,omitempty"`
		HashedRekordV002 *struct {
			Data      v2Hash `json:"data"`
			Signature v2Sig  `json:"signature"`
		} `json:"hashedRekordV002,omitempty"`
	} `json:"spec"`
}

type v2Hash struct {
	Algorithm string `json:"algorithm"`
	Digest    []byte `json:"digest"`
}

type v2Sig struct {
	Content  []byte `json:"content"`
	Verifier struct {
		KeyDetails string `json:"keyDetails"`
		PublicKey  *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"publicKey,omitempty"`
		X509Certificate *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"x509Certificate,omitempty"`
	} `json:"verifier"`
}

func (s v2Sig) logged() loggedSig {
	ls := loggedSig{sig: s.Content}
	if c := s.Verifier.X509Certificate; c != nil {
		ls.certDER = c.RawBytes
	} else if k := s.Verifier.PublicKey; k != nil {
		ls.keyBytes = k.RawBytes
	}
	return ls
}

// Rekor v1 bodies (hashedrekord 0.0.1, dsse 0.0.1).
type v1Body struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Spec       json.RawMessage `json:"spec"`
}

// v1Canonical is a Rekor v1 body with its decoded spec, for re-encoding.
type v1Canonical struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       any    `json:"spec"`
}

type v1Hash struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

type v1HashedRekord struct {
	Data struct {
		Hash v1Hash `json:"hash"`
	} `json:"data"`
	Signature struct {
		Content   []byte `json:"content"`
		PublicKey struct {
			Content []byte `json:"content"`
		} `json:"publicKey"`
	} `json:"signature"`
}

type v1DSSE struct {
	EnvelopeHash *v1Hash `json:"envelopeHash,omitempty"`
	PayloadHash  v1Hash  `json:"payloadHash"`
	Signatures   []struct {
		Signature []byte `json:"signature"`
		Verifier  []byte `json:"verifier"`
	} `json:"signatures"`
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// requireCanonical checks that body is byte for byte the canonical form of
// what was decoded from it: RFC 8785 JSON (the form Rekor v1 and rekor-tiles
// write), every field once and spelled exactly. encoding/json takes the last
// of duplicate keys and matches names case-insensitively, so without this a
// body could say one thing to signet and another to a reader that takes the
// first key; the log only ever writes the canonical form.
//
// The re-encoding is RFC 8785 for every body a log writes: keys in order (the
// field order of the types), no whitespace, strings of base64, hex, PEM and
// names that need no escapes. A string that would need one encodes
// differently from RFC 8785 and is refused, which is the safe side.
func requireCanonical(body []byte, decoded any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(decoded); err != nil {
		return fmt.Errorf("cannot re-encode the body: %v", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Equal(out, body) {
		at := 0
		for at < len(out) && at < len(body) && out[at] == body[at] {
			at++
		}
		return fmt.Errorf("body is not in the canonical form the log writes (RFC 8785 JSON, each field once, exact field names); it differs at byte %d, so it was altered or not written by a log", at)
	}
	return nil
}

// parseBody decodes a canonicalized log entry body of a supported kind and
// refuses any body that is not in canonical form.
func parseBody(body []byte) (*loggedSignature, error) {
	var head v1Body
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("canonicalizedBody is not JSON: %v", err)
	}
	out := &loggedSignature{kind: head.Kind, version: head.APIVersion}
	switch head.Kind + " " + head.APIVersion {
	case "hashedrekord 0.0.2", "dsse 0.0.2":
		var b v2Body
		if err := decodeStrict(body, &b); err != nil {
			return nil, fmt.Errorf("%s %s body: %v", head.Kind, head.APIVersion, err)
		}
		if err := requireCanonical(body, b); err != nil {
			return nil, err
		}
		var h v2Hash
		var sigs []v2Sig
		switch {
		case head.Kind == "hashedrekord" && b.Spec.HashedRekordV002 != nil:
			h, sigs = b.Spec.HashedRekordV002.Data, []v2Sig{b.Spec.HashedRekordV002.Signature}
		case head.Kind == "dsse" && b.Spec.DsseV002 != nil:
			h, sigs, out.payloadHash = b.Spec.DsseV002.PayloadHash, b.Spec.DsseV002.Signatures, true
		default:
			return nil, fmt.Errorf("%s %s body has no matching spec", head.Kind, head.APIVersion)
		}
		alg, err := hashFromName(h.Algorithm)
		if err != nil {
			return nil, err
		}
		out.digestAlg, out.digest = alg, h.Digest
		for _, s := range sigs {
			out.sigs = append(out.sigs, s.logged())
		}
	case "hashedrekord 0.0.1":
		var spec v1HashedRekord
		if err := decodeStrict(head.Spec, &spec); err != nil {
			return nil, fmt.Errorf("hashedrekord 0.0.1 spec: %v", err)
		}
		if err := requireCanonical(body, v1Canonical{head.APIVersion, head.Kind, spec}); err != nil {
			return nil, err
		}
		if err := out.setV1Hash(spec.Data.Hash); err != nil {
			return nil, err
		}
		ls, err := v1Verifier(spec.Signature.Content, spec.Signature.PublicKey.Content)
		if err != nil {
			return nil, err
		}
		out.sigs = []loggedSig{ls}
	case "dsse 0.0.1":
		var spec v1DSSE
		if err := decodeStrict(head.Spec, &spec); err != nil {
			return nil, fmt.Errorf("dsse 0.0.1 spec: %v", err)
		}
		if err := requireCanonical(body, v1Canonical{head.APIVersion, head.Kind, spec}); err != nil {
			return nil, err
		}
		if err := out.setV1Hash(spec.PayloadHash); err != nil {
			return nil, err
		}
		out.payloadHash = true
		for _, s := range spec.Signatures {
			ls, err := v1Verifier(s.Signature, s.Verifier)
			if err != nil {
				return nil, err
			}
			out.sigs = append(out.sigs, ls)
		}
	default:
		return nil, fmt.Errorf("entry kind %q version %q is not supported; signet verifies hashedrekord 0.0.2 and dsse 0.0.2 (Rekor v2) and hashedrekord 0.0.1 and dsse 0.0.1 (Rekor v1)", head.Kind, head.APIVersion)
	}
	if len(out.sigs) == 0 {
		return nil, errors.New("body holds no signature")
	}
	return out, nil
}

func (l *loggedSignature) setV1Hash(h v1Hash) error {
	alg, err := hashFromName(h.Algorithm)
	if err != nil {
		return err
	}
	d, err := hex.DecodeString(h.Value)
	if err != nil {
		return fmt.Errorf("logged digest %q is not hex", h.Value)
	}
	l.digestAlg, l.digest = alg, d
	return nil
}

// v1Verifier decodes a Rekor v1 verifier: a PEM certificate or public key.
func v1Verifier(sig, pemBytes []byte) (loggedSig, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return loggedSig{}, errors.New("logged verifier is not PEM")
	}
	ls := loggedSig{sig: sig}
	if blk.Type == "CERTIFICATE" {
		ls.certDER = blk.Bytes
	} else {
		ls.keyBytes = blk.Bytes
	}
	return ls, nil
}

// expectedEntry is what the bundle says the log entry must contain.
type expectedEntry struct {
	sig     []byte
	certDER []byte           // nil for a public key bundle
	key     crypto.PublicKey // the trusted key (Policy.Key), if any
	// For message signatures: the artifact digest. For DSSE: the PAE and
	// the raw payload, hashed with whatever algorithm the entry names.
	digest  *Digest
	pae     []byte
	payload []byte
}

// checkBody verifies that the entry body records exactly the bundle's
// signature, certificate and digest.
func checkBody(e *protorekor.TransparencyLogEntry, want expectedEntry) error {
	got, err := parseBody(e.GetCanonicalizedBody())
	if err != nil {
		return fail(CheckTlogBody, err, "log entry %d", e.GetLogIndex())
	}
	kv := e.GetKindVersion()
	if kv.GetKind() != got.kind || kv.GetVersion() != got.version {
		return mismatch(CheckTlogBody, "kindVersion", kv.GetKind()+" "+kv.GetVersion(), got.kind+" "+got.version)
	}
	found := false
	for _, s := range got.sigs {
		if bytes.Equal(s.sig, want.sig) {
			found = true
			if s.certDER == nil {
				if want.certDER != nil {
					return fail(CheckTlogBody, nil, "entry logs a bare public key, not the bundle's certificate")
				}
				if ok, logged := loggedKeyMatches(s.keyBytes, want.key); !ok {
					return mismatch(CheckTlogBody, "logged public key", fingerprint(want.key)+" (given key)", logged)
				}
				continue
			}
			if want.certDER == nil {
				return fail(CheckTlogBody, nil, "entry logs a certificate, but the bundle carries a public key")
			}
			if !bytes.Equal(s.certDER, want.certDER) {
				return mismatch(CheckTlogBody, "logged certificate", "the bundle's certificate "+shortHash(want.certDER), "certificate "+shortHash(s.certDER))
			}
		}
	}
	if !found {
		return mismatch(CheckTlogBody, "logged signature", base64.StdEncoding.EncodeToString(want.sig), base64.StdEncoding.EncodeToString(got.sigs[0].sig))
	}

	var expected []byte
	switch {
	case want.digest != nil && !got.payloadHash:
		if got.digestAlg != want.digest.Algorithm {
			return mismatch(CheckTlogBody, "logged digest algorithm", hashName(want.digest.Algorithm), hashName(got.digestAlg))
		}
		expected = want.digest.Value
	case want.pae != nil && !got.payloadHash:
		// hashedrekord over DSSE: the entry logs the digest of the PAE.
		h := got.digestAlg.New()
		h.Write(want.pae)
		expected = h.Sum(nil)
	case want.pae != nil && got.payloadHash:
		h := got.digestAlg.New()
		h.Write(want.payload)
		expected = h.Sum(nil)
	default:
		return fail(CheckTlogBody, nil, "a %s entry cannot record a message signature", got.kind)
	}
	if !bytes.Equal(expected, got.digest) {
		return mismatch(CheckTlogBody, "logged digest", fmt.Sprintf("%s:%x", hashName(got.digestAlg), expected), fmt.Sprintf("%s:%x", hashName(got.digestAlg), got.digest))
	}
	return nil
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:8])
}

// checkInclusion verifies the RFC 6962 inclusion proof of the entry body and
// the checkpoint that commits to the proof's root.
func checkInclusion(log *trust.Log, e *protorekor.TransparencyLogEntry) (*flog.Checkpoint, error) {
	p := e.GetInclusionProof()
	if p.GetLogIndex() != e.GetLogIndex() {
		return nil, mismatch(CheckInclusionProof, "proof log index", fmt.Sprint(e.GetLogIndex()), fmt.Sprint(p.GetLogIndex()))
	}
	if p.GetLogIndex() < 0 || p.GetTreeSize() < 0 {
		return nil, fail(CheckInclusionProof, nil, "negative log index or tree size")
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.GetCanonicalizedBody())
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.GetLogIndex()), uint64(p.GetTreeSize()), leaf, p.GetHashes(), p.GetRootHash()); err != nil {
		var rm proof.RootMismatchError
		if errors.As(err, &rm) {
			return nil, &Error{Check: CheckInclusionProof, Msg: fmt.Sprintf("entry %d with %d proof hashes does not lead to the proof's root for tree size %d", p.GetLogIndex(), len(p.GetHashes()), p.GetTreeSize()),
				Expected: base64.StdEncoding.EncodeToString(rm.ExpectedRoot), Found: base64.StdEncoding.EncodeToString(rm.CalculatedRoot)}
		}
		return nil, fail(CheckInclusionProof, err, "entry %d in tree size %d", p.GetLogIndex(), p.GetTreeSize())
	}
	cp, err := openCheckpoint(log, p.GetCheckpoint().GetEnvelope(), e.GetKindVersion().GetVersion() == "0.0.1")
	if err != nil {
		return nil, err
	}
	if cp.Size != uint64(p.GetTreeSize()) {
		return nil, mismatch(CheckCheckpoint, "checkpoint tree size", fmt.Sprint(p.GetTreeSize()), fmt.Sprint(cp.Size))
	}
	if !bytes.Equal(cp.Hash, p.GetRootHash()) {
		return nil, mismatch(CheckCheckpoint, "checkpoint root hash", base64.StdEncoding.EncodeToString(p.GetRootHash()), base64.StdEncoding.EncodeToString(cp.Hash))
	}
	return cp, nil
}

// openCheckpoint verifies a C2SP signed-note checkpoint against the log key.
// rekorV1 admits the origin of a Rekor v1 shard (see originMatches).
func openCheckpoint(log *trust.Log, envelope string, rekorV1 bool) (*flog.Checkpoint, error) {
	v, err := noteVerifier(log)
	if err != nil {
		return nil, fail(CheckCheckpoint, err, "log %s key", log.BaseURL)
	}
	if err := canonicalSignatures(envelope); err != nil {
		return nil, fail(CheckCheckpoint, err, "malformed checkpoint")
	}
	n, err := note.Open([]byte(envelope), note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		switch {
		case errors.As(err, &unverified):
			return nil, fail(CheckCheckpoint, nil, "checkpoint carries no signature by log %s (key name %q, key ID %08x)", log.BaseURL, log.Origin, log.CheckpointKeyID)
		default:
			return nil, fail(CheckCheckpoint, err, "checkpoint signature by log %s (key ID %08x) does not verify", log.BaseURL, log.CheckpointKeyID)
		}
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fail(CheckCheckpoint, err, "checkpoint body")
	}
	if !originMatches(cp.Origin, log.Origin, rekorV1) {
		want := log.Origin
		if rekorV1 {
			want += ` (or "` + log.Origin + ` - <tree ID>" for a Rekor v1 shard)`
		}
		return nil, mismatch(CheckCheckpoint, "checkpoint origin", want, cp.Origin)
	}
	return &cp, nil
}

// originMatches decides which checkpoint origins belong to a log. Rekor v2
// logs (rekor-tiles, signet) sign under their host name and nothing else.
// Rekor v1 shards share one key and log ID and tell their trees apart by a
// decimal tree ID suffix, "<host> - <tree ID>"; that form is accepted only
// for Rekor v1 entries (body apiVersion 0.0.1), never for a Rekor v2 log,
// so a shard suffix cannot smuggle a second tree under a Rekor v2 log's key.
func originMatches(origin, want string, rekorV1 bool) bool {
	if origin == want {
		return true
	}
	tree, ok := strings.CutPrefix(origin, want+" - ")
	if !rekorV1 || !ok || tree == "" || (len(tree) > 1 && tree[0] == '0') {
		return false
	}
	for _, c := range tree {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// canonicalSignatures rejects signature lines whose base64 is not canonical:
// Go's decoder ignores padding bits, so two spellings would verify alike.
func canonicalSignatures(envelope string) error {
	i := strings.Index(envelope, "\n\n")
	if i < 0 {
		return errors.New("no blank line between checkpoint body and signatures")
	}
	for _, line := range strings.Split(strings.TrimSuffix(envelope[i+2:], "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "—" {
			return fmt.Errorf("signature line %q is not \"— <name> <base64>\"", line)
		}
		raw, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || base64.StdEncoding.EncodeToString(raw) != f[2] {
			return fmt.Errorf("signature of %q is not canonical base64", f[1])
		}
	}
	return nil
}

// keyVerifier adapts a log key to note.Verifier for key types that the note
// package does not implement (ECDSA, RSA), following rekor-tiles' scheme.
type keyVerifier struct {
	name   string
	hash   uint32
	verify func(msg, sig []byte) bool
}

func (k *keyVerifier) Name() string                { return k.name }
func (k *keyVerifier) KeyHash() uint32             { return k.hash }
func (k *keyVerifier) Verify(msg, sig []byte) bool { return k.verify(msg, sig) }

func noteVerifier(log *trust.Log) (note.Verifier, error) {
	switch k := log.PublicKey.(type) {
	case ed25519.PublicKey:
		vkey, err := note.NewEd25519VerifierKey(log.Origin, k)
		if err != nil {
			return nil, err
		}
		return note.NewVerifier(vkey)
	case *ecdsa.PublicKey, *rsa.PublicKey:
		return &keyVerifier{name: log.Origin, hash: log.CheckpointKeyID, verify: func(msg, sig []byte) bool {
			return logSignatureValid(log, msg, sig)
		}}, nil
	}
	return nil, fmt.Errorf("unsupported log key type %T", log.PublicKey)
}

// logSignatureValid checks a signature by the log key over msg.
func logSignatureValid(log *trust.Log, msg, sig []byte) bool {
	switch k := log.PublicKey.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		h := log.HashAlgorithm.New()
		h.Write(msg)
		return ecdsa.VerifyASN1(k, h.Sum(nil), sig)
	case *rsa.PublicKey:
		h := log.HashAlgorithm.New()
		h.Write(msg)
		return rsa.VerifyPKCS1v15(k, log.HashAlgorithm, h.Sum(nil), sig) == nil
	}
	return false
}

// checkPromise verifies a Rekor v1 signed entry timestamp (SET): the log's
// signature over the canonical JSON of body, integratedTime, logID, logIndex.
func checkPromise(log *trust.Log, e *protorekor.TransparencyLogEntry) (time.Time, error) {
	payload, err := json.Marshal(struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogID          string `json:"logID"`
		LogIndex       int64  `json:"logIndex"`
	}{
		Body:           base64.StdEncoding.EncodeToString(e.GetCanonicalizedBody()),
		IntegratedTime: e.GetIntegratedTime(),
		LogID:          hex.EncodeToString(e.GetLogId().GetKeyId()),
		LogIndex:       e.GetLogIndex(),
	})
	if err == nil {
		payload, err = jsoncanonicalizer.Transform(payload)
	}
	if err != nil {
		return time.Time{}, fail(CheckInclusionPromise, err, "cannot build the signed entry timestamp payload")
	}
	if !logSignatureValid(log, payload, e.GetInclusionPromise().GetSignedEntryTimestamp()) {
		return time.Time{}, fail(CheckInclusionPromise, nil, "signed entry timestamp of entry %d does not verify with the key of log %s", e.GetLogIndex(), log.BaseURL)
	}
	return time.Unix(e.GetIntegratedTime(), 0).UTC(), nil
}
