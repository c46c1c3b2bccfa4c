package tstoken

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ---- genuine tokens from github.com/digitorus/timestamp ----

var oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

type testTSA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// newTSA makes a TSA signing certificate with the critical timeStamping EKU
// RFC 3161 2.3 requires, like server/tsa. With a nil parent it is
// self-signed; else parent (a CA) issues it.
func newTSA(t testing.TB, cn string, parent *testTSA, isCA bool) *testTSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"signet test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if !isCA {
		eku, _ := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}}
	}
	issuer, issuerKey := tmpl, key
	if parent != nil {
		issuer, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testTSA{key: key, cert: cert}
}

// respond runs a request with the given imprint hash through digitorus
// the way server/tsa does and returns the DER TimeStampResp.
func (a *testTSA) respond(t testing.TB, imprint, signHash crypto.Hash, withCert bool, chain ...*x509.Certificate) ([]byte, error) {
	t.Helper()
	reqDER, err := timestamp.CreateRequest(strings.NewReader("signet artifact"), &timestamp.RequestOptions{
		Hash: imprint, Certificates: withCert, Nonce: big.NewInt(0x5157),
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := timestamp.ParseRequest(reqDER)
	if err != nil {
		t.Fatal(err)
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     req.HashAlgorithm,
		HashedMessage:     req.HashedMessage,
		Time:              time.Now().UTC(),
		Accuracy:          time.Second,
		Nonce:             req.Nonce,
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2},
		AddTSACertificate: req.Certificates,
		Certificates:      chain,
	}
	return ts.CreateResponseWithOpts(a.cert, a.key, signHash)
}

func (a *testTSA) mustRespond(t testing.TB, imprint crypto.Hash, withCert bool) []byte {
	t.Helper()
	resp, err := a.respond(t, imprint, crypto.SHA256, withCert)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// verifyLikeSignet is the signature check core/verify does after Check:
// digitorus parses the token, the pinned leaf is added, the signer must be
// that leaf, and pkcs7 verifies the signature and chain.
func verifyLikeSignet(tok []byte, leaf *x509.Certificate) error {
	if _, err := timestamp.Parse(tok); err != nil {
		return err
	}
	p7, err := pkcs7.Parse(tok)
	if err != nil {
		return err
	}
	p7.Certificates = append(p7.Certificates, leaf)
	if s := p7.GetOnlySigner(); s == nil || !bytes.Equal(s.Raw, leaf.Raw) {
		return errors.New("signer is not the pinned leaf")
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return p7.VerifyWithOpts(x509.VerifyOptions{Roots: roots, CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}})
}

// ---- a TLV tree to edit precisely ----

// node is one TLV. Encoding recomputes every length, so an edit breaks only
// the rule it targets.
type node struct {
	tag   byte    // identifier octet
	val   []byte  // contents of a primitive element
	kids  []*node // contents of a constructed element
	raw   []byte  // if set, emitted verbatim in place of the element
	long  int     // if > 0, the length is written in this many octets (non-minimal)
	indef bool    // write an indefinite length and end-of-contents octets

	off, size, hdr int // where parseTree found it (unedited trees only)
}

func parseTree(t testing.TB, der []byte) *node {
	t.Helper()
	n, rest := parseAt(t, der, 0)
	if len(rest) > 0 {
		t.Fatal("trailing data")
	}
	return n
}

func parseAt(t testing.TB, b []byte, off int) (*node, []byte) {
	t.Helper()
	s := cryptobyte.String(b)
	var body cryptobyte.String
	var tag casn1.Tag
	if !s.ReadAnyASN1(&body, &tag) {
		t.Fatalf("test parser: bad DER at offset %d", off)
	}
	size := len(b) - len(s)
	n := &node{tag: byte(tag), off: off, size: size, hdr: size - len(body)}
	if n.tag&0x20 == 0 {
		n.val = slices.Clone(body)
		return n, s
	}
	for rest := []byte(body); len(rest) > 0; {
		var kid *node
		kid, rest = parseAt(t, rest, off+size-len(rest))
		n.kids = append(n.kids, kid)
	}
	return n, s
}

func (n *node) enc() []byte {
	if n.raw != nil {
		return n.raw
	}
	body := n.val
	if n.tag&0x20 != 0 {
		body = nil
		for _, k := range n.kids {
			body = append(body, k.enc()...)
		}
	}
	out := []byte{n.tag}
	l := len(body)
	switch {
	case n.indef:
		return append(append(append(out, 0x80), body...), 0, 0)
	case n.long > 0:
		out = append(out, 0x80|byte(n.long))
		for i := n.long - 1; i >= 0; i-- {
			out = append(out, byte(l>>(8*i)))
		}
	case l < 0x80:
		out = append(out, byte(l))
	default:
		var lb []byte
		for ; l > 0; l >>= 8 {
			lb = append([]byte{byte(l)}, lb...)
		}
		out = append(append(out, 0x80|byte(len(lb))), lb...)
	}
	return append(out, body...)
}

func (n *node) clone() *node {
	c := *n
	c.val = slices.Clone(n.val)
	c.kids = nil
	for _, k := range n.kids {
		c.kids = append(c.kids, k.clone())
	}
	return &c
}

// child returns the first child with identifier octet tag.
func (n *node) child(t testing.TB, tag byte) *node {
	t.Helper()
	for _, k := range n.kids {
		if k.tag == tag {
			return k
		}
	}
	t.Fatalf("no child with tag %#x", tag)
	return nil
}

func (n *node) remove(k *node) {
	n.kids = slices.DeleteFunc(n.kids, func(x *node) bool { return x == k })
}

// sortKids puts the children of a SET in DER order, so that an edit that
// adds an element does not also break the ordering rule.
func (n *node) sortKids() {
	slices.SortFunc(n.kids, func(a, b *node) int { return bytes.Compare(a.enc(), b.enc()) })
}

func mustMarshal(t testing.TB, v any) *node {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return parseTree(t, b)
}

func algNode(t testing.TB, oid asn1.ObjectIdentifier, null bool) *node {
	a := pkix.AlgorithmIdentifier{Algorithm: oid}
	if null {
		a.Parameters = asn1.NullRawValue
	}
	return mustMarshal(t, a)
}

var (
	asnSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	asnSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	asnSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	asnSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	asnData   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// Paths into a TimeStampResp tree.
func tokenOf(r *node) *node      { return r.kids[1] }
func signedData(r *node) *node   { return r.kids[1].kids[1].kids[0] }
func encap(r *node) *node        { return signedData(r).kids[2] }
func eContent(r *node) *node     { return encap(r).kids[1].kids[0] } // the OCTET STRING
func signerInfo(r *node) *node   { sd := signedData(r); return sd.kids[len(sd.kids)-1].kids[0] }
func certificates(r *node) *node { return signedData(r).kids[3] }
func signedAttrs(t testing.TB, r *node) *node {
	return signerInfo(r).child(t, 0xa0)
}

// attr returns the signed attribute whose type's last arc is last
// (3 content-type, 4 message-digest, 5 signing-time).
func attr(t testing.TB, r *node, last byte) *node {
	t.Helper()
	for _, a := range signedAttrs(t, r).kids {
		if v := a.kids[0].val; len(v) == 9 && v[7] == 9 && v[8] == last {
			return a
		}
	}
	t.Fatalf("no attribute 1.2.840.113549.1.9.%d", last)
	return nil
}

// editTST edits the TSTInfo inside the eContent OCTET STRING.
func editTST(t testing.TB, r *node, edit func(tst *node)) {
	t.Helper()
	ec := eContent(r)
	tst := parseTree(t, ec.val)
	edit(tst)
	ec.val = tst.enc()
}

// ---- acceptance ----

func TestAcceptsGenuineTokens(t *testing.T) {
	tsa := newTSA(t, "test TSA", nil, false)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, withCert := range []bool{false, true} {
			resp := tsa.mustRespond(t, h, withCert)
			ts, err := timestamp.ParseResponse(resp)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Check(resp)
			if err != nil {
				t.Fatalf("%v, certificate %v: Check(response): %v", h, withCert, err)
			}
			if !bytes.Equal(tok, ts.RawToken) {
				t.Fatalf("%v, certificate %v: Check returned %x, not the timeStampToken %x", h, withCert, tok, ts.RawToken)
			}
			bare, err := Check(tok)
			if err != nil {
				t.Fatalf("%v, certificate %v: Check(bare token): %v", h, withCert, err)
			}
			if !bytes.Equal(bare, tok) {
				t.Fatalf("%v, certificate %v: Check(bare token) did not return its input", h, withCert)
			}
			if err := verifyLikeSignet(tok, tsa.cert); err != nil {
				t.Fatalf("%v, certificate %v: genuine token does not verify: %v", h, withCert, err)
			}
		}
	}
}

// TestGenuineShape pins what digitorus writes, which the rules rely on.
func TestGenuineShape(t *testing.T) {
	tsa := newTSA(t, "test TSA", nil, false)
	for _, withCert := range []bool{false, true} {
		r := parseTree(t, tsa.mustRespond(t, crypto.SHA384, withCert))
		sd := signedData(r)
		// CMS digest algorithms: parameters absent.
		if got, want := sd.kids[1].kids[0].enc(), algNode(t, asnSHA256, false).enc(); !bytes.Equal(got, want) {
			t.Errorf("digestAlgorithms entry is %x, want sha256 without parameters %x", got, want)
		}
		if got := signerInfo(r).kids[2].enc(); !bytes.Equal(got, algNode(t, asnSHA256, false).enc()) {
			t.Errorf("signer digestAlgorithm is %x, want sha256 without parameters", got)
		}
		// messageImprint: parameters NULL.
		tst := parseTree(t, eContent(r).val)
		if got := tst.kids[2].kids[0].enc(); !bytes.Equal(got, algNode(t, asnSHA384, true).enc()) {
			t.Errorf("messageImprint hashAlgorithm is %x, want sha384 with NULL", got)
		}
		// certificates [0] is written even when it is empty.
		if c := certificates(r); c.tag != 0xa0 || len(c.kids) != map[bool]int{false: 0, true: 1}[withCert] {
			t.Errorf("certificate %v: certificates field is tag %#x with %d certificates", withCert, c.tag, len(c.kids))
		}
	}
}

// interopDir holds bundles that cosign, sigstore-go and sigstore-js made.
var interopDir = filepath.Join("..", "..", "..", "..", "shared", "interop")

func TestAcceptsInteropBundles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(interopDir, "*.sigstore.json"))
	if _, err := os.Stat(interopDir); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("interop vectors not found at %s: %v", interopDir, err)
		}
		t.Fatalf("interop vectors not found at %s: %v", interopDir, err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.sigstore.json in %s", interopDir)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			VerificationMaterial struct {
				TimestampVerificationData struct {
					RFC3161Timestamps []struct {
						SignedTimestamp []byte `json:"signedTimestamp"` // base64
					} `json:"rfc3161Timestamps"`
				} `json:"timestampVerificationData"`
			} `json:"verificationMaterial"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		stamps := b.VerificationMaterial.TimestampVerificationData.RFC3161Timestamps
		if len(stamps) == 0 {
			t.Errorf("%s has no RFC 3161 timestamp", filepath.Base(f))
		}
		for i, s := range stamps {
			tok, err := Check(s.SignedTimestamp)
			if err != nil {
				t.Errorf("%s timestamp %d: %v", filepath.Base(f), i, err)
				continue
			}
			ts, err := timestamp.ParseResponse(s.SignedTimestamp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tok, ts.RawToken) {
				t.Errorf("%s timestamp %d: Check did not return the timeStampToken", filepath.Base(f), i)
			}
		}
	}
}

// ---- one rule at a time ----

func TestRejects(t *testing.T) {
	tsa := newTSA(t, "test TSA", nil, false)
	genuine := tsa.mustRespond(t, crypto.SHA256, true)

	tests := []struct {
		name string
		edit func(t *testing.T, r *node)
		want []string
	}{
		// X.690 DER, anywhere in the input.
		{"non-minimal length, exact offset", func(t *testing.T, r *node) { r.kids[0].long = 1 },
			[]string{"not DER: length of element at offset 4 is not minimally encoded"}},
		{"non-minimal length deep in the TSTInfo", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[2].kids[0].kids[0].long = 1 }) // messageImprint OID
		}, []string{"length of element at offset", "not minimally encoded: 9 fits in the short form"}},
		{"length with a leading zero octet", func(t *testing.T, r *node) { signerInfo(r).kids[4].long = 2 },
			[]string{"not minimally encoded (leading zero octet)"}},
		{"indefinite length", func(t *testing.T, r *node) { signedData(r).indef = true },
			[]string{"indefinite length"}},
		{"non-minimal tag", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[2].kids[0].kids[1].raw = []byte{0x1f, 0x05, 0x00} }) // NULL as [UNIVERSAL 5] in long form
		}, []string{"tag of element at offset", "not minimally encoded"}},
		{"constructed OCTET STRING for eContent", func(t *testing.T, r *node) {
			ec := eContent(r)
			*ec = node{tag: 0x24, kids: []*node{{tag: 0x04, val: ec.val[:10]}, {tag: 0x04, val: ec.val[10:]}}}
		}, []string{"OCTET STRING at offset", "uses the constructed form"}},
		{"primitive SEQUENCE", func(t *testing.T, r *node) {
			sid := signerInfo(r).kids[1]
			sid.val, sid.tag, sid.kids = sid.enc()[2:], 0x10, nil
		}, []string{"SEQUENCE at offset", "uses the primitive form"}},
		{"trailing byte", nil, []string{"1 trailing bytes after the element"}},
		{"truncated element inside a SEQUENCE", func(t *testing.T, r *node) {
			si := signerInfo(r)
			si.kids = append(si.kids, &node{raw: []byte{0x05}})
		}, []string{"truncated element at offset"}},
		{"extra element at the end of a SEQUENCE", func(t *testing.T, r *node) {
			si := signerInfo(r)
			si.kids = append(si.kids, &node{tag: 0x05})
		}, []string{"signerInfo has an unexpected NULL at offset", "after its last field"}},
		{"trailing bytes after the TSTInfo", func(t *testing.T, r *node) {
			eContent(r).val = append(eContent(r).val, 0x05, 0x00)
		}, []string{"2 trailing bytes after the TSTInfo"}},
		{"INTEGER with a leading 0x00", func(t *testing.T, r *node) { signedData(r).kids[0].val = []byte{0, 3} },
			[]string{"INTEGER at offset", "superfluous leading 0x00 byte"}},
		{"BOOLEAN not 0x00 or 0xff", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { // ordering, after genTime and accuracy
				tst.kids = slices.Insert(tst.kids, 6, &node{tag: 0x01, val: []byte{0x01}})
			})
		}, []string{"BOOLEAN at offset", "not 0x00 or 0xff"}},
		{"NULL with contents", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[2].kids[0].kids[1].val = []byte{0} })
		}, []string{"NULL at offset", "is not empty"}},
		{"BIT STRING unused-bits octet 8 inside an embedded certificate", func(t *testing.T, r *node) {
			certificates(r).kids[0].kids[2].val[0] = 8
		}, []string{"BIT STRING at offset", "invalid unused-bits octet"}},
		{"OID with a leading 0x80 subidentifier octet", func(t *testing.T, r *node) {
			ect := encap(r).kids[0]
			ect.val = append([]byte{ect.val[0], 0x80}, ect.val[1:]...)
		}, []string{"OBJECT IDENTIFIER at offset", "leading 0x80"}},
		{"GeneralizedTime with a trailing zero in the fraction", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[4].val = []byte("20260102030405.50Z") })
		}, []string{"GeneralizedTime at offset", `"20260102030405.50Z"`}},
		{"GeneralizedTime not in UTC", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[4].val = []byte("20260102030405+0100") })
		}, []string{"GeneralizedTime at offset", "in UTC"}},
		{"GeneralizedTime in local time", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[4].val = []byte("20260102030405.25") })
		}, []string{"GeneralizedTime at offset", "in UTC"}},
		{"UTCTime without seconds", func(t *testing.T, r *node) {
			attr(t, r, 5).kids[1].kids[0].val = []byte("2601020304Z")
		}, []string{"UTCTime at offset", "YYMMDDHHMMSSZ"}},
		{"unsorted SET", func(t *testing.T, r *node) {
			das := signedData(r).kids[1]
			das.kids = []*node{algNode(t, asnSHA512, false), das.kids[0]}
		}, []string{"elements of SET at offset", "not in DER order"}},
		{"unsorted signedAttrs", func(t *testing.T, r *node) {
			sa := signedAttrs(t, r)
			sa.kids[0], sa.kids[1] = sa.kids[1], sa.kids[0]
		}, []string{"elements of signedAttrs [0] at offset", "not in DER order"}},

		// RFC 3161 and RFC 5652 structure.
		{"status rejection", func(t *testing.T, r *node) { r.kids[0].kids[0].val = []byte{2} },
			[]string{"TimeStampResp status is 2 (rejection)"}},
		{"failInfo with status granted", func(t *testing.T, r *node) {
			r.kids[0].kids = append(r.kids[0].kids, &node{tag: 0x03, val: []byte{0}})
		}, []string{"failInfo"}},
		{"no timeStampToken", func(t *testing.T, r *node) { r.kids = r.kids[:1] },
			[]string{"TimeStampResp has no timeStampToken"}},
		{"element after the timeStampToken", func(t *testing.T, r *node) {
			r.kids = append(r.kids, &node{tag: 0x05})
		}, []string{"TimeStampResp has an unexpected NULL"}},
		{"contentType id-data", func(t *testing.T, r *node) { *tokenOf(r).kids[0] = *mustMarshal(t, asnData) },
			[]string{"ContentInfo contentType is id-data (1.2.840.113549.1.7.1)"}},
		{"SignedData version 1", func(t *testing.T, r *node) { signedData(r).kids[0].val = []byte{1} },
			[]string{"SignedData version is 1; RFC 5652 5.1 requires 3"}},
		{"extra digestAlgorithms entry", func(t *testing.T, r *node) {
			das := signedData(r).kids[1]
			das.kids = append(das.kids, algNode(t, asnSHA1, false))
			das.sortKids()
		}, []string{"timestamp token: digestAlgorithms lists sha1, sha256; it must list exactly the signer's digest algorithm sha256"}},
		{"digestAlgorithms names another hash", func(t *testing.T, r *node) {
			signedData(r).kids[1].kids[0] = algNode(t, asnSHA384, false)
		}, []string{"digestAlgorithms lists sha384; it must list exactly the signer's digest algorithm sha256"}},
		{"digestAlgorithms with NULL parameters", func(t *testing.T, r *node) {
			signedData(r).kids[1].kids[0] = algNode(t, asnSHA256, true)
		}, []string{"digestAlgorithms lists sha256 (with NULL parameters)"}},
		{"eContentType id-data", func(t *testing.T, r *node) { *encap(r).kids[0] = *mustMarshal(t, asnData) },
			[]string{"eContentType is id-data (1.2.840.113549.1.7.1); a timestamp token's must be id-ct-TSTInfo"}},
		{"no eContent", func(t *testing.T, r *node) { encap(r).kids = encap(r).kids[:1] },
			[]string{"encapContentInfo has no eContent"}},
		{"crls present", func(t *testing.T, r *node) {
			sd := signedData(r)
			sd.kids = slices.Insert(sd.kids, 4, &node{tag: 0xa1})
		}, []string{"SignedData has crls [1]"}},
		{"certificates holding something else", func(t *testing.T, r *node) { certificates(r).kids[0].tag = 0xa1 },
			[]string{"certificates [0] contains [1]", "only X.509 certificates"}},
		{"two signerInfos", func(t *testing.T, r *node) {
			sis := signedData(r).kids[4]
			sis.kids = append(sis.kids, sis.kids[0].clone())
		}, []string{"SignedData has 2 signerInfos"}},
		{"signerInfo version 2", func(t *testing.T, r *node) { signerInfo(r).kids[0].val = []byte{2} },
			[]string{"timestamp token: signerInfo version is 2; RFC 5652 allows 1 (issuerAndSerialNumber) or 3 (subjectKeyIdentifier)"}},
		{"signerInfo version 3 with issuerAndSerialNumber", func(t *testing.T, r *node) { signerInfo(r).kids[0].val = []byte{3} },
			[]string{"signerInfo version is 3 but its sid is SEQUENCE", "version 3 with subjectKeyIdentifier [0]"}},
		{"signerInfo version 1 with subjectKeyIdentifier", func(t *testing.T, r *node) {
			signerInfo(r).kids[1] = &node{tag: 0x80, val: tsa.cert.SubjectKeyId}
		}, []string{"signerInfo version is 1 but its sid is [0]"}},
		{"signer digestAlgorithm with NULL parameters", func(t *testing.T, r *node) {
			signerInfo(r).kids[2] = algNode(t, asnSHA256, true)
			signedData(r).kids[1].kids[0] = algNode(t, asnSHA256, true)
		}, []string{"signerInfo digestAlgorithm sha256 has NULL parameters; RFC 5754"}},
		{"no signedAttrs", func(t *testing.T, r *node) { signerInfo(r).remove(signedAttrs(t, r)) },
			[]string{"signerInfo has no signedAttrs"}},
		{"duplicate attribute", func(t *testing.T, r *node) {
			sa := signedAttrs(t, r)
			sa.kids = append(sa.kids, attr(t, r, 5).clone())
			sa.sortKids()
		}, []string{"signed attribute signing-time (1.2.840.113549.1.9.5) appears twice"}},
		{"no content-type attribute", func(t *testing.T, r *node) { signedAttrs(t, r).remove(attr(t, r, 3)) },
			[]string{"signedAttrs has no content-type attribute"}},
		{"content-type attribute id-data", func(t *testing.T, r *node) {
			attr(t, r, 3).kids[1].kids[0] = mustMarshal(t, asnData)
			signedAttrs(t, r).sortKids()
		}, []string{"content-type attribute must have the single value id-ct-TSTInfo"}},
		{"no message-digest attribute", func(t *testing.T, r *node) { signedAttrs(t, r).remove(attr(t, r, 4)) },
			[]string{"signedAttrs has no message-digest attribute"}},
		{"message-digest with two values", func(t *testing.T, r *node) {
			vals := attr(t, r, 4).kids[1]
			vals.kids = append(vals.kids, &node{tag: 0x04, val: make([]byte, 32)})
			vals.sortKids()
			signedAttrs(t, r).sortKids()
		}, []string{"message-digest attribute must have exactly one value, an OCTET STRING; it has 2 values"}},
		{"message-digest of the wrong size", func(t *testing.T, r *node) {
			attr(t, r, 4).kids[1].kids[0].val = make([]byte, 20)
			signedAttrs(t, r).sortKids()
		}, []string{"message-digest attribute is 20 bytes; the signer's digest algorithm makes 32"}},
		{"signatureAlgorithm for another hash", func(t *testing.T, r *node) {
			signerInfo(r).kids[4] = algNode(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, false)
		}, []string{"signatureAlgorithm is ecdsa-with-SHA384 but its digestAlgorithm is sha256"}},
		{"ECDSA signatureAlgorithm with NULL parameters", func(t *testing.T, r *node) {
			signerInfo(r).kids[4] = algNode(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, true)
		}, []string{"signatureAlgorithm ecdsa-with-SHA256 has NULL parameters; RFC 5758"}},
		{"signatureAlgorithm named by the curve", func(t *testing.T, r *node) {
			// pkcs7 accepts the curve OID in place of ecdsa-with-SHA256.
			signerInfo(r).kids[4] = algNode(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}, false)
		}, []string{"signatureAlgorithm is 1.2.840.10045.3.1.7; supported are"}},
		{"unsignedAttrs", func(t *testing.T, r *node) {
			si := signerInfo(r)
			si.kids = append(si.kids, &node{tag: 0xa1, kids: []*node{attr(t, r, 5).clone()}})
		}, []string{"signerInfo has unsignedAttrs [1]"}},
		{"TSTInfo version 2", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[0].val = []byte{2} })
		}, []string{"TSTInfo version is 2"}},
		{"messageImprint with SHA-512 parameters other than NULL", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[2].kids[0].kids[1] = &node{tag: 0x04} })
		}, []string{"messageImprint hashAlgorithm sha256 has OCTET STRING parameters"}},
		{"messageImprint of the wrong size", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids[2].kids[1].val = make([]byte, 48) })
		}, []string{"messageImprint hashedMessage is 48 bytes; a sha256 digest is 32"}},
		{"genTime as UTCTime", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { *tst.kids[4] = node{tag: 0x17, val: []byte("260102030405Z")} })
		}, []string{"TSTInfo: genTime should be GeneralizedTime, found UTCTime"}},
		{"ordering FALSE written out", func(t *testing.T, r *node) {
			editTST(t, r, func(tst *node) { tst.kids = slices.Insert(tst.kids, 6, &node{tag: 0x01, val: []byte{0}}) })
		}, []string{"TSTInfo ordering is encoded as FALSE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mutant []byte
			if tc.edit == nil {
				mutant = append(slices.Clone(genuine), 0)
			} else {
				r := parseTree(t, genuine)
				tc.edit(t, r)
				mutant = r.enc()
			}
			if bytes.Equal(mutant, genuine) {
				t.Fatal("the edit changed nothing")
			}
			_, err := Check(mutant)
			if err == nil {
				t.Fatalf("Check accepted the mutant")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRejectsSHA1(t *testing.T) {
	tsa := newTSA(t, "test TSA", nil, false)

	// digitorus refuses a SHA-1 imprint itself (its ESSCertIDv2 uses the
	// imprint's hash); if it ever issues one, test that; else rewrite the
	// imprint of a SHA-256 token.
	resp, err := tsa.respond(t, crypto.SHA1, crypto.SHA256, false)
	if err != nil {
		t.Logf("digitorus refuses a SHA-1 imprint (%v); rewriting one", err)
		r := parseTree(t, tsa.mustRespond(t, crypto.SHA256, false))
		editTST(t, r, func(tst *node) {
			tst.kids[2] = mustMarshal(t, struct {
				Alg  pkix.AlgorithmIdentifier
				Hash []byte
			}{pkix.AlgorithmIdentifier{Algorithm: asnSHA1, Parameters: asn1.NullRawValue}, make([]byte, 20)})
		})
		resp = r.enc()
	}
	if _, err := Check(resp); err == nil || !strings.Contains(err.Error(), "messageImprint uses sha1 (1.3.14.3.2.26); only sha256, sha384 and sha512") {
		t.Errorf("SHA-1 imprint: got %v", err)
	}

	// A genuine token whose CMS signature uses SHA-1.
	resp, err = tsa.respond(t, crypto.SHA256, crypto.SHA1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(resp); err == nil || !strings.Contains(err.Error(), "signerInfo digestAlgorithm is sha1 (1.3.14.3.2.26); a timestamp token must use sha256, sha384 or sha512") {
		t.Errorf("SHA-1 signer digest: got %v", err)
	}
}

// TestCertificateOrder covers the implicit SET OF certificates: digitorus
// writes the leaf first and then the chain, which is DER order only if the
// leaf's encoding happens to sort first. Check takes either order (the set
// is unsigned; core/verify pins its content to the trusted chain).
func TestCertificateOrder(t *testing.T) {
	root := newTSA(t, "test TSA root", nil, true)
	leaf := newTSA(t, "test TSA signing", root, false)
	resp, err := leaf.respond(t, crypto.SHA256, crypto.SHA256, true, root.cert)
	if err != nil {
		t.Fatal(err)
	}
	r := parseTree(t, resp)
	certs := certificates(r)
	if len(certs.kids) != 2 {
		t.Fatalf("token has %d certificates, want 2", len(certs.kids))
	}
	certs.sortKids()
	if _, err := Check(r.enc()); err != nil {
		t.Errorf("sorted certificates: %v", err)
	}
	// Unsorted, as TSAs write it: accepted (core/verify pins the content).
	certs.kids[0], certs.kids[1] = certs.kids[1], certs.kids[0]
	if _, err := Check(r.enc()); err != nil {
		t.Errorf("unsorted certificates: %v", err)
	}
}

// ---- every single-byte change ----

// TestByteMutationSweep changes every byte of genuine responses (bit 0 and
// bit 7) and requires that whatever Check still accepts is caught by the
// signature check that follows it, because the change lies in a region the
// signature or a hash covers.
func TestByteMutationSweep(t *testing.T) {
	tsa := newTSA(t, "test TSA", nil, false)
	for _, withCert := range []bool{false, true} {
		resp := tsa.mustRespond(t, crypto.SHA256, withCert)
		genuineToken, err := Check(resp)
		if err != nil {
			t.Fatal(err)
		}
		r := parseTree(t, resp)
		si := signerInfo(r)
		type region struct {
			name      string
			off, size int
		}
		ec := eContent(r)
		sa := signedAttrs(t, r)
		sig := si.kids[5]
		regions := []region{
			// Outside the token: Check returns the same token bytes.
			{"status", r.kids[0].off, r.kids[0].size},
			{"TSTInfo", ec.off + ec.hdr, len(ec.val)},
			{"signedAttrs", sa.off, sa.size},
			{"signature value", sig.off + sig.hdr, len(sig.val)},
			// Unsigned, but pkcs7 finds the signer's certificate by exact
			// issuer bytes and serial number, so any other sid finds none.
			{"sid", si.kids[1].off, si.kids[1].size},
		}
		for _, c := range certificates(r).kids {
			regions = append(regions, region{"certificate", c.off, c.size})
		}
		accepted := map[string]int{}
		for i := range resp {
			for _, bit := range []byte{0x01, 0x80} {
				m := slices.Clone(resp)
				m[i] ^= bit
				tok, err := Check(m)
				if err != nil {
					continue
				}
				in := ""
				for _, rg := range regions {
					if i >= rg.off && i < rg.off+rg.size {
						in = rg.name
					}
				}
				accepted[in]++
				switch in {
				case "":
					t.Errorf("certificate %v: Check accepted byte %d ^ %#02x, outside every signed region", withCert, i, bit)
				case "status":
					if !bytes.Equal(tok, genuineToken) {
						t.Errorf("certificate %v: status change at byte %d changed the token", withCert, i)
					}
				default:
					if verifyLikeSignet(tok, tsa.cert) == nil {
						t.Errorf("certificate %v: change at byte %d (%s) passes both Check and the signature check", withCert, i, in)
					}
				}
			}
		}
		if accepted["TSTInfo"] == 0 || accepted["signature value"] == 0 {
			t.Errorf("certificate %v: the sweep accepted no change in the signed regions (%v); is it testing anything?", withCert, accepted)
		}
		t.Logf("certificate %v: %d bytes, mutants accepted by Check per region: %v", withCert, len(resp), accepted)
	}
}
