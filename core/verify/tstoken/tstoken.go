// Package tstoken reads RFC 3161 timestamp tokens strictly: it accepts a
// token only if it is the one DER encoding of the structure a TSA signs, so
// that nobody can change the parts of a token its signature does not cover.
//
// A CMS signature covers only the signed attributes (which include the digest
// of the TSTInfo). Everything around them — the SignedData version, the
// digestAlgorithms set, the eContentType, the SignerInfo version and sid, the
// digest and signature algorithm identifiers, the length octets — can be
// re-encoded or changed without breaking the signature, and
// github.com/digitorus/pkcs7 even re-encodes the signed attributes to DER
// before it verifies them, so a BER spelling of them verifies too. Check
// closes that gap: it walks the whole TLV tree enforcing X.690 DER, then
// checks the RFC 3161 / RFC 5652 structure field by field. It does not verify
// the signature; the caller still must.
package tstoken

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Identifier octets of the elements the structure checks look for.
const (
	idBoolean     = 0x01
	idInteger     = 0x02
	idBitString   = 0x03
	idOctetString = 0x04
	idNull        = 0x05
	idOID         = 0x06
	idUTF8String  = 0x0c
	idGenTime     = 0x18
	idSequence    = 0x30
	idSet         = 0x31
	idCtx0        = 0x80 // [0] primitive
	idCtx0Cons    = 0xa0 // [0] constructed
	idCtx1Cons    = 0xa1 // [1] constructed
)

// maxDepth bounds recursion; real tokens, certificates included, nest about 20 deep.
const maxDepth = 64

// elem is one parsed TLV.
type elem struct {
	off   int    // offset of the identifier octets in Check's input
	id    int    // the identifier octet, or -1 for a high tag number (never expected in a token)
	class int    // 0 universal, 1 application, 2 context-specific, 3 private
	cons  bool   // constructed
	tag   int    // tag number
	hdr   int    // length of identifier and length octets
	full  []byte // the whole encoding
	body  []byte // the contents octets
	kids  []*elem
}

func derErr(format string, args ...any) error {
	return fmt.Errorf("timestamp token: not DER: "+format, args...)
}

func bad(format string, args ...any) error {
	return fmt.Errorf("timestamp token: "+format, args...)
}

// Check verifies that der — a DER TimeStampResp (RFC 3161 section 2.4.2) or a
// bare TimeStampToken (a CMS ContentInfo) — is strict DER with the structure
// a TSA signs, and returns the TimeStampToken's bytes (the ContentInfo) on
// success. The returned slice aliases der.
//
// Rules beyond X.690 DER: a response must have status 0 or 1 and a token; the
// token is id-signedData, SignedData version 3 with exactly one SignerInfo,
// no crls, only X.509 certificates; digestAlgorithms is exactly the signer's
// digestAlgorithm; eContentType is id-ct-TSTInfo with the eContent present;
// SignerInfo is version 1 with issuerAndSerialNumber or version 3 with
// subjectKeyIdentifier; digestAlgorithm is SHA-256/384/512 with parameters
// absent (RFC 5754 section 2: that is what implementations generate, and
// allowing NULL too would let anyone flip between the two unsigned spellings);
// signatureAlgorithm is ECDSA or RSA PKCS #1 v1.5 with that same hash; the
// signedAttrs are present, hold each attribute type once and include the
// content-type (id-ct-TSTInfo) and message-digest attributes with one value
// each; there are no unsignedAttrs; the TSTInfo is version 1 with a
// SHA-256/384/512 messageImprint and a DER GeneralizedTime (UTC, ending in Z).
func Check(der []byte) ([]byte, error) {
	top, rest, err := parse(der, 0, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, derErr("%d trailing bytes after the element that ends at offset %d", len(rest), len(top.full))
	}
	if top.id != idSequence {
		return nil, bad("input starts with %s, not the SEQUENCE of a TimeStampResp or ContentInfo", describe(top))
	}
	token := top
	if len(top.kids) > 0 && top.kids[0].id == idSequence {
		// A ContentInfo starts with an OID, a TimeStampResp with PKIStatusInfo.
		if token, err = checkResponse(top); err != nil {
			return nil, err
		}
	}
	if err := checkContentInfo(token); err != nil {
		return nil, err
	}
	return token.full, nil
}

// parse reads one element at the start of b (which starts at offset base of
// the input) and applies the X.690 DER rules to it and, recursively, to its
// contents. It returns the bytes after the element.
func parse(b []byte, base, depth int) (*elem, []byte, error) {
	if depth > maxDepth {
		return nil, nil, bad("elements nest more than %d deep at offset %d", maxDepth, base)
	}
	if len(b) < 2 {
		return nil, nil, derErr("truncated element at offset %d", base)
	}
	e := &elem{off: base, id: int(b[0]), class: int(b[0] >> 6), cons: b[0]&0x20 != 0, tag: int(b[0] & 0x1f)}
	i := 1
	if e.tag == 0x1f {
		// High tag number form: base-128 digits, the first not zero, and only
		// for numbers that do not fit the low form (X.690 8.1.2.4).
		e.id, e.tag = -1, 0
		for {
			if i >= len(b) || i > 4 {
				return nil, nil, derErr("tag of element at offset %d is truncated or too long", base)
			}
			if i == 1 && b[i] == 0x80 {
				return nil, nil, derErr("tag of element at offset %d is not minimally encoded (leading 0x80)", base)
			}
			e.tag = e.tag<<7 | int(b[i]&0x7f)
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
		if e.tag < 0x1f {
			return nil, nil, derErr("tag of element at offset %d is not minimally encoded: tag number %d fits in the identifier octet", base, e.tag)
		}
	}
	if i >= len(b) {
		return nil, nil, derErr("truncated element at offset %d", base)
	}
	n := int(b[i])
	i++
	switch {
	case n == 0x80:
		return nil, nil, derErr("element at offset %d has an indefinite length; DER requires definite lengths", base)
	case n == 0xff:
		return nil, nil, derErr("element at offset %d uses the reserved length octet 0xff", base)
	case n > 0x80:
		k := n & 0x7f
		if k > 4 || i+k > len(b) {
			return nil, nil, derErr("length of element at offset %d is truncated or longer than the input", base)
		}
		if b[i] == 0 {
			return nil, nil, derErr("length of element at offset %d is not minimally encoded (leading zero octet)", base)
		}
		n = 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
		if n < 0x80 {
			return nil, nil, derErr("length of element at offset %d is not minimally encoded: %d fits in the short form", base, n)
		}
	}
	if n > len(b)-i {
		return nil, nil, derErr("element at offset %d claims %d content bytes but only %d follow", base, n, len(b)-i)
	}
	e.hdr, e.full, e.body = i, b[:i+n], b[i:i+n]
	if e.class == 0 {
		if err := checkUniversal(e); err != nil {
			return nil, nil, err
		}
	}
	if e.cons {
		for rest := e.body; len(rest) > 0; {
			kid, r, err := parse(rest, base+len(e.full)-len(rest), depth+1)
			if err != nil {
				return nil, nil, err
			}
			e.kids = append(e.kids, kid)
			rest = r
		}
		if e.id == idSet {
			if err := checkSetOrder(e, "SET"); err != nil {
				return nil, nil, err
			}
		}
	}
	return e, b[i+n:], nil
}

var universalNames = map[int]string{
	0: "end-of-contents", 1: "BOOLEAN", 2: "INTEGER", 3: "BIT STRING", 4: "OCTET STRING", 5: "NULL",
	6: "OBJECT IDENTIFIER", 7: "ObjectDescriptor", 8: "EXTERNAL", 9: "REAL", 10: "ENUMERATED",
	11: "EMBEDDED PDV", 12: "UTF8String", 13: "RELATIVE-OID", 16: "SEQUENCE", 17: "SET",
	18: "NumericString", 19: "PrintableString", 20: "TeletexString", 21: "VideotexString",
	22: "IA5String", 23: "UTCTime", 24: "GeneralizedTime", 25: "GraphicString", 26: "VisibleString",
	27: "GeneralString", 28: "UniversalString", 29: "CHARACTER STRING", 30: "BMPString",
}

// describe names an element for error messages, e.g. "OCTET STRING at offset 69".
func describe(e *elem) string {
	return fmt.Sprintf("%s at offset %d", tagName(e), e.off)
}

func tagName(e *elem) string {
	switch e.class {
	case 0:
		if name, ok := universalNames[e.tag]; ok {
			return name
		}
		return fmt.Sprintf("universal tag %d", e.tag)
	case 2:
		return fmt.Sprintf("[%d]", e.tag)
	case 1:
		return fmt.Sprintf("[APPLICATION %d]", e.tag)
	}
	return fmt.Sprintf("[PRIVATE %d]", e.tag)
}

// checkUniversal applies the DER rules for universal types: the encoding
// form each type must use and the canonical contents of the types whose
// values have several BER spellings.
func checkUniversal(e *elem) error {
	if e.tag == 0 {
		return derErr("end-of-contents octets at offset %d; they only end indefinite lengths, which DER forbids", e.off)
	}
	// SEQUENCE, SET, EXTERNAL and EMBEDDED PDV are always constructed; DER
	// requires every string, time and simple type in the primitive form
	// (X.690 10.2), which rules out BER's segmented strings.
	mustCons := e.tag == 16 || e.tag == 17 || e.tag == 8 || e.tag == 11
	if e.cons != mustCons {
		if mustCons {
			return derErr("%s uses the primitive form; it is always constructed", describe(e))
		}
		return derErr("%s uses the constructed form; DER requires the primitive form", describe(e))
	}
	v := e.body
	switch e.tag {
	case 1: // BOOLEAN (X.690 11.1)
		if len(v) != 1 || (v[0] != 0 && v[0] != 0xff) {
			return derErr("%s is not 0x00 or 0xff; DER encodes TRUE as 0xff and FALSE as 0x00", describe(e))
		}
	case 2, 10: // INTEGER, ENUMERATED (X.690 8.3.2)
		if len(v) == 0 {
			return derErr("%s is empty", describe(e))
		}
		if len(v) > 1 && (v[0] == 0 && v[1]&0x80 == 0 || v[0] == 0xff && v[1]&0x80 != 0) {
			return derErr("%s is not minimally encoded (superfluous leading 0x%02x byte)", describe(e), v[0])
		}
	case 3: // BIT STRING (X.690 8.6.2, 11.2.1)
		if len(v) == 0 || v[0] > 7 || len(v) == 1 && v[0] != 0 {
			return derErr("%s has an invalid unused-bits octet; it must be 0..7, and 0 when the string is empty", describe(e))
		}
		if len(v) > 1 && v[len(v)-1]&(1<<v[0]-1) != 0 {
			return derErr("%s has unused bits that are not zero", describe(e))
		}
	case 5: // NULL (X.690 8.8.2)
		if len(v) != 0 {
			return derErr("%s is not empty", describe(e))
		}
	case 6, 13: // OBJECT IDENTIFIER, RELATIVE-OID (X.690 8.19.2)
		if len(v) == 0 || v[len(v)-1]&0x80 != 0 {
			return derErr("%s is empty or ends inside a subidentifier", describe(e))
		}
		for i := range v {
			if v[i] == 0x80 && (i == 0 || v[i-1]&0x80 == 0) {
				return derErr("%s has a subidentifier with a leading 0x80 octet; DER requires the fewest octets", describe(e))
			}
		}
	case 23: // UTCTime (X.690 11.8): YYMMDDHHMMSSZ
		s := string(v)
		if len(s) != 13 || s[12] != 'Z' || !digits(s[:12]) || !validTime("060102150405", s[:12]) {
			return derErr("%s is %q; DER requires YYMMDDHHMMSSZ", describe(e), s)
		}
	case 24: // GeneralizedTime (X.690 11.7): YYYYMMDDHHMMSS[.f]Z, no trailing zeros
		s := string(v)
		ok := len(s) >= 15 && s[len(s)-1] == 'Z' && digits(s[:14]) && validTime("20060102150405", s[:14])
		if ok && len(s) > 15 {
			frac := s[14 : len(s)-1]
			ok = len(frac) >= 2 && frac[0] == '.' && digits(frac[1:]) && frac[len(frac)-1] != '0'
		}
		if !ok {
			return derErr("%s is %q; DER requires YYYYMMDDHHMMSS[.fff]Z in UTC, without trailing zeros in the fraction", describe(e), s)
		}
	}
	return nil
}

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validTime(layout, s string) bool {
	_, err := time.Parse(layout, s)
	return err == nil
}

// checkSetOrder enforces X.690 11.6: the elements of a SET OF appear in
// ascending order of their encodings. (The standard pads the shorter of two
// encodings with zeros; bytes.Compare is equivalent here because no valid
// TLV is a proper prefix of another.) Equal elements may repeat.
func checkSetOrder(set *elem, what string) error {
	for i := 1; i < len(set.kids); i++ {
		if bytes.Compare(set.kids[i-1].full, set.kids[i].full) > 0 {
			return derErr("elements of %s at offset %d are not in DER order (X.690 11.6): the element at offset %d must come before the one at offset %d",
				what, set.off, set.kids[i].off, set.kids[i-1].off)
		}
	}
	return nil
}

// fields reads the components of a SEQUENCE in order.
type fields struct {
	of   string // the structure, for error messages
	kids []*elem
}

func fieldsOf(of string, e *elem) *fields { return &fields{of: of, kids: e.kids} }

// take returns the next component, which must have identifier octet id.
func (f *fields) take(id int, name string) (*elem, error) {
	if len(f.kids) == 0 {
		return nil, bad("%s has no %s", f.of, name)
	}
	e := f.kids[0]
	if e.id != id {
		return nil, bad("%s: %s should be %s, found %s", f.of, name, idName(id), describe(e))
	}
	f.kids = f.kids[1:]
	return e, nil
}

// maybe returns the next component if it has identifier octet id.
func (f *fields) maybe(id int) *elem {
	if len(f.kids) > 0 && f.kids[0].id == id {
		e := f.kids[0]
		f.kids = f.kids[1:]
		return e
	}
	return nil
}

// done fails if components are left over: a trailing element the
// structure has no field for.
func (f *fields) done() error {
	if len(f.kids) > 0 {
		return bad("%s has an unexpected %s after its last field", f.of, describe(f.kids[0]))
	}
	return nil
}

func idName(id int) string {
	return tagName(&elem{class: id >> 6, tag: id & 0x1f})
}

// intValue reads a small INTEGER; ok is false if it does not fit an int64.
func intValue(e *elem) (v int64, ok bool) {
	if len(e.body) > 8 {
		return 0, false
	}
	for i, c := range e.body {
		if i == 0 && c&0x80 != 0 {
			v = -1
		}
		v = v<<8 | int64(c)
	}
	return v, true
}

func intString(e *elem) string {
	if v, ok := intValue(e); ok {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("0x%x", e.body)
}

const (
	oidSignedData    = "1.2.840.113549.1.7.2"
	oidData          = "1.2.840.113549.1.7.1"
	oidTSTInfo       = "1.2.840.113549.1.9.16.1.4"
	oidContentType   = "1.2.840.113549.1.9.3"
	oidMessageDigest = "1.2.840.113549.1.9.4"
	oidSHA256        = "2.16.840.1.101.3.4.2.1"
	oidSHA384        = "2.16.840.1.101.3.4.2.2"
	oidSHA512        = "2.16.840.1.101.3.4.2.3"
	oidRSA           = "1.2.840.113549.1.1.1"
)

var oidNames = map[string]string{
	oidSignedData: "id-signedData", oidData: "id-data", oidTSTInfo: "id-ct-TSTInfo",
	oidContentType: "content-type", oidMessageDigest: "message-digest", "1.2.840.113549.1.9.5": "signing-time",
	"1.2.840.113549.1.9.16.2.47": "signingCertificateV2", "1.2.840.113549.1.9.16.2.12": "signingCertificate",
	"1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.4": "sha224", "1.2.840.113549.2.5": "md5",
	oidSHA256: "sha256", oidSHA384: "sha384", oidSHA512: "sha512",
	"1.2.840.10045.4.1": "ecdsa-with-SHA1", "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
	"1.2.840.10045.4.3.3": "ecdsa-with-SHA384", "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
	oidRSA: "rsaEncryption", "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
	"1.2.840.113549.1.1.11": "sha256WithRSAEncryption", "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
	"1.2.840.113549.1.1.13": "sha512WithRSAEncryption", "1.2.840.113549.1.1.10": "RSASSA-PSS",
	"1.2.840.10045.2.1": "id-ecPublicKey", "1.3.101.112": "Ed25519",
}

// hashes are the digests a token may use, with their sizes.
var hashes = map[string]int{oidSHA256: 32, oidSHA384: 48, oidSHA512: 64}

// sigAlgs maps each accepted signatureAlgorithm to the digest it implies
// ("" for rsaEncryption, which takes the signer's digest) and whether its
// parameters are NULL (RSA, RFC 8017) rather than absent (ECDSA, RFC 5758).
var sigAlgs = map[string]struct {
	hash string
	null bool
}{
	"1.2.840.10045.4.3.2":   {oidSHA256, false},
	"1.2.840.10045.4.3.3":   {oidSHA384, false},
	"1.2.840.10045.4.3.4":   {oidSHA512, false},
	oidRSA:                  {"", true},
	"1.2.840.113549.1.1.11": {oidSHA256, true},
	"1.2.840.113549.1.1.12": {oidSHA384, true},
	"1.2.840.113549.1.1.13": {oidSHA512, true},
}

// oidString renders an OID's contents in dotted form. parse has already
// checked the encoding.
func oidString(e *elem) string {
	var parts []string
	var v uint64
	for _, c := range e.body {
		if v >= 1<<57 { // the next shift would overflow
			return fmt.Sprintf("an OID with arcs too large to print (%x)", e.body)
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 != 0 {
			continue
		}
		if len(parts) == 0 {
			// The first subidentifier packs the first two arcs (X.690 8.19.4).
			first := min(v/40, 2)
			parts = append(parts, fmt.Sprint(first), fmt.Sprint(v-first*40))
		} else {
			parts = append(parts, fmt.Sprint(v))
		}
		v = 0
	}
	return strings.Join(parts, ".")
}

// oidName is the OID's short name if it has one, else its dotted form.
func oidName(oid string) string {
	if name, ok := oidNames[oid]; ok {
		return name
	}
	return oid
}

// oidLong is "name (dotted)" for known OIDs.
func oidLong(oid string) string {
	if name, ok := oidNames[oid]; ok {
		return name + " (" + oid + ")"
	}
	return oid
}

// algID reads an AlgorithmIdentifier: its OID and its parameters, if any.
func algID(of string, e *elem) (oid string, params *elem, err error) {
	f := fieldsOf(of, e)
	o, err := f.take(idOID, "algorithm")
	if err != nil {
		return "", nil, err
	}
	if len(f.kids) > 0 {
		params, f.kids = f.kids[0], f.kids[1:]
	}
	return oidString(o), params, f.done()
}

// algDesc describes an AlgorithmIdentifier for error messages.
func algDesc(e *elem) string {
	oid, params, err := algID("", e)
	if err != nil {
		return "a malformed AlgorithmIdentifier at offset " + fmt.Sprint(e.off)
	}
	if params != nil {
		return fmt.Sprintf("%s (with %s parameters)", oidName(oid), tagName(params))
	}
	return oidName(oid)
}

// checkResponse checks a TimeStampResp and returns its timeStampToken.
//
//	TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
//	PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL, failInfo PKIFailureInfo OPTIONAL }
func checkResponse(resp *elem) (*elem, error) {
	f := fieldsOf("TimeStampResp", resp)
	si, err := f.take(idSequence, "status")
	if err != nil {
		return nil, err
	}
	sf := fieldsOf("TimeStampResp status (PKIStatusInfo)", si)
	st, err := sf.take(idInteger, "status")
	if err != nil {
		return nil, err
	}
	if v, ok := intValue(st); !ok || v != 0 && v != 1 {
		name := map[int64]string{2: " (rejection)", 3: " (waiting)", 4: " (revocationWarning)", 5: " (revocationNotification)"}[v]
		return nil, bad("TimeStampResp status is %s%s; a token is only valid with status 0 (granted) or 1 (grantedWithMods)", intString(st), name)
	}
	if text := sf.maybe(idSequence); text != nil {
		for _, s := range text.kids {
			if s.id != idUTF8String {
				return nil, bad("TimeStampResp statusString holds %s; PKIFreeText is a SEQUENCE of UTF8String", describe(s))
			}
		}
	}
	if fi := sf.maybe(idBitString); fi != nil {
		return nil, bad("TimeStampResp has a failInfo (%s) although its status says granted", describe(fi))
	}
	if err := sf.done(); err != nil {
		return nil, err
	}
	tok := f.maybe(idSequence)
	if err := f.done(); err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, bad("TimeStampResp has no timeStampToken")
	}
	return tok, nil
}

// checkContentInfo checks a TimeStampToken.
//
//	ContentInfo ::= SEQUENCE { contentType ContentType, content [0] EXPLICIT ANY DEFINED BY contentType }
func checkContentInfo(ci *elem) error {
	f := fieldsOf("ContentInfo", ci)
	ct, err := f.take(idOID, "contentType")
	if err != nil {
		return err
	}
	if oid := oidString(ct); oid != oidSignedData {
		return bad("ContentInfo contentType is %s; a timestamp token must be id-signedData (%s)", oidLong(oid), oidSignedData)
	}
	wrap, err := f.take(idCtx0Cons, "content [0]")
	if err != nil {
		return err
	}
	if err := f.done(); err != nil {
		return err
	}
	w := fieldsOf("ContentInfo content [0]", wrap)
	sd, err := w.take(idSequence, "SignedData")
	if err != nil {
		return err
	}
	if err := w.done(); err != nil {
		return err
	}
	return checkSignedData(sd)
}

// checkSignedData checks the SignedData of a token (RFC 5652 5.1).
//
//	SignedData ::= SEQUENCE { version CMSVersion, digestAlgorithms SET OF DigestAlgorithmIdentifier,
//	  encapContentInfo EncapsulatedContentInfo, certificates [0] IMPLICIT CertificateSet OPTIONAL,
//	  crls [1] IMPLICIT RevocationInfoChoices OPTIONAL, signerInfos SET OF SignerInfo }
func checkSignedData(sd *elem) error {
	f := fieldsOf("SignedData", sd)
	ver, err := f.take(idInteger, "version")
	if err != nil {
		return err
	}
	if v, ok := intValue(ver); !ok || v != 3 {
		return bad("SignedData version is %s; RFC 5652 5.1 requires 3 because the eContentType is not id-data", intString(ver))
	}
	das, err := f.take(idSet, "digestAlgorithms")
	if err != nil {
		return err
	}
	eci, err := f.take(idSequence, "encapContentInfo")
	if err != nil {
		return err
	}
	if certs := f.maybe(idCtx0Cons); certs != nil {
		// Their order is not checked: DER wants this SET OF sorted, but TSAs
		// (digitorus/timestamp among them, so signet's own and Sigstore's)
		// write the signer first. The set is unsigned; core/verify pins what
		// it may hold instead: only certificates of the trusted TSA chain.
		for _, c := range certs.kids {
			if c.id != idSequence {
				// Other CertificateChoices would require SignedData version 4 or 5.
				return bad("certificates [0] contains %s; only X.509 certificates belong in a timestamp token", describe(c))
			}
		}
	}
	if crls := f.maybe(idCtx1Cons); crls != nil {
		return bad("SignedData has crls [1] at offset %d; a timestamp token must not carry them (they are not signed)", crls.off)
	}
	sis, err := f.take(idSet, "signerInfos")
	if err != nil {
		return err
	}
	if err := f.done(); err != nil {
		return err
	}
	if len(sis.kids) != 1 {
		return bad("SignedData has %d signerInfos; a timestamp token has exactly one", len(sis.kids))
	}
	digestAlg, err := checkSignerInfo(sis.kids[0])
	if err != nil {
		return err
	}
	// Nothing signs digestAlgorithms; it may only repeat the signer's digest.
	if len(das.kids) != 1 || !bytes.Equal(das.kids[0].full, digestAlg.full) {
		var list []string
		for _, d := range das.kids {
			list = append(list, algDesc(d))
		}
		if len(list) == 0 {
			list = []string{"nothing"}
		}
		return bad("digestAlgorithms lists %s; it must list exactly the signer's digest algorithm %s", strings.Join(list, ", "), algDesc(digestAlg))
	}

	// EncapsulatedContentInfo ::= SEQUENCE { eContentType ContentType, eContent [0] EXPLICIT OCTET STRING OPTIONAL }
	ef := fieldsOf("encapContentInfo", eci)
	ect, err := ef.take(idOID, "eContentType")
	if err != nil {
		return err
	}
	if oid := oidString(ect); oid != oidTSTInfo {
		return bad("eContentType is %s; a timestamp token's must be id-ct-TSTInfo (%s)", oidLong(oid), oidTSTInfo)
	}
	ec := ef.maybe(idCtx0Cons)
	if ec == nil {
		if err := ef.done(); err != nil {
			return err
		}
		return bad("encapContentInfo has no eContent; a timestamp token must carry its TSTInfo")
	}
	if err := ef.done(); err != nil {
		return err
	}
	of := fieldsOf("eContent [0]", ec)
	os, err := of.take(idOctetString, "OCTET STRING")
	if err != nil {
		return err
	}
	if err := of.done(); err != nil {
		return err
	}
	// The OCTET STRING holds the TSTInfo's DER; hold it to the same rules.
	tst, rest, err := parse(os.body, os.off+os.hdr, 0)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return derErr("%d trailing bytes after the TSTInfo in the eContent at offset %d", len(rest), os.off)
	}
	return checkTSTInfo(tst)
}

// checkSignerInfo checks the only SignerInfo of a token (RFC 5652 5.3).
//
//	SignerInfo ::= SEQUENCE { version CMSVersion, sid SignerIdentifier, digestAlgorithm DigestAlgorithmIdentifier,
//	  signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL, signatureAlgorithm SignatureAlgorithmIdentifier,
//	  signature SignatureValue, unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
//
// It returns the digestAlgorithm, which digestAlgorithms must repeat.
func checkSignerInfo(e *elem) (*elem, error) {
	if e.id != idSequence {
		return nil, bad("signerInfos holds %s; a SignerInfo is a SEQUENCE", describe(e))
	}
	f := fieldsOf("signerInfo", e)
	ver, err := f.take(idInteger, "version")
	if err != nil {
		return nil, err
	}
	// Each version goes with one sid form (RFC 5652 5.3); sid is unsigned,
	// so nothing else pins the pairing.
	v, _ := intValue(ver)
	if v != 1 && v != 3 {
		return nil, bad("signerInfo version is %s; RFC 5652 allows 1 (issuerAndSerialNumber) or 3 (subjectKeyIdentifier)", intString(ver))
	}
	if len(f.kids) == 0 {
		return nil, bad("signerInfo has no sid")
	}
	sid := f.kids[0]
	f.kids = f.kids[1:]
	switch {
	case v == 1 && sid.id == idSequence:
		// IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber }
		sf := fieldsOf("signerInfo sid (issuerAndSerialNumber)", sid)
		if _, err := sf.take(idSequence, "issuer"); err != nil {
			return nil, err
		}
		if _, err := sf.take(idInteger, "serialNumber"); err != nil {
			return nil, err
		}
		if err := sf.done(); err != nil {
			return nil, err
		}
	case v == 3 && sid.id == idCtx0:
		// subjectKeyIdentifier [0] IMPLICIT OCTET STRING: any octets.
	default:
		return nil, bad("signerInfo version is %d but its sid is %s; version 1 goes with issuerAndSerialNumber (a SEQUENCE), version 3 with subjectKeyIdentifier [0]", v, describe(sid))
	}

	da, err := f.take(idSequence, "digestAlgorithm")
	if err != nil {
		return nil, err
	}
	hash, params, err := algID("signerInfo digestAlgorithm", da)
	if err != nil {
		return nil, err
	}
	size, ok := hashes[hash]
	if !ok {
		return nil, bad("signerInfo digestAlgorithm is %s; a timestamp token must use sha256, sha384 or sha512", oidLong(hash))
	}
	if params != nil {
		return nil, bad("signerInfo digestAlgorithm %s has %s parameters; RFC 5754 section 2 says they are absent", oidName(hash), tagName(params))
	}

	sa := f.maybe(idCtx0Cons)
	if sa == nil {
		return nil, bad("signerInfo has no signedAttrs; a timestamp token must sign its content-type and message-digest")
	}
	if err := checkSignedAttrs(sa, size); err != nil {
		return nil, err
	}

	sigAlg, err := f.take(idSequence, "signatureAlgorithm")
	if err != nil {
		return nil, err
	}
	sig, sigParams, err := algID("signerInfo signatureAlgorithm", sigAlg)
	if err != nil {
		return nil, err
	}
	want, ok := sigAlgs[sig]
	if !ok {
		return nil, bad("signerInfo signatureAlgorithm is %s; supported are ecdsa-with-SHA256/384/512 and RSA PKCS #1 v1.5 (rsaEncryption, sha256/384/512WithRSAEncryption)", oidLong(sig))
	}
	// The signatureAlgorithm is unsigned, so it gets one spelling only.
	if want.hash != "" && want.hash != hash {
		return nil, bad("signerInfo signatureAlgorithm is %s but its digestAlgorithm is %s; they must name the same hash", oidName(sig), oidName(hash))
	}
	if want.null && (sigParams == nil || sigParams.id != idNull) || !want.null && sigParams != nil {
		p := "absent parameters"
		if sigParams != nil {
			p = tagName(sigParams) + " parameters"
		}
		if want.null {
			return nil, bad("signerInfo signatureAlgorithm %s has %s; RSA algorithm identifiers take NULL parameters", oidName(sig), p)
		}
		return nil, bad("signerInfo signatureAlgorithm %s has %s; RFC 5758 says they are absent", oidName(sig), p)
	}
	if _, err := f.take(idOctetString, "signature"); err != nil {
		return nil, err
	}
	if ua := f.maybe(idCtx1Cons); ua != nil {
		return nil, bad("signerInfo has unsignedAttrs [1] at offset %d; nothing signs them, so a timestamp token must not carry any", ua.off)
	}
	if err := f.done(); err != nil {
		return nil, err
	}
	return da, nil
}

// checkSignedAttrs checks the signed attributes (RFC 5652 5.3, 11.1, 11.2).
//
//	Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF AttributeValue }
func checkSignedAttrs(sa *elem, digestSize int) error {
	// Implicitly tagged, so parse did not know it is a SET OF. pkcs7 sorts
	// before verifying, so only this check stops a reordered copy.
	if err := checkSetOrder(sa, "signedAttrs [0]"); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range sa.kids {
		if a.id != idSequence {
			return bad("signedAttrs contains %s; each attribute is a SEQUENCE", describe(a))
		}
		af := fieldsOf("signed attribute", a)
		t, err := af.take(idOID, "attrType")
		if err != nil {
			return err
		}
		vals, err := af.take(idSet, "attrValues")
		if err != nil {
			return err
		}
		if err := af.done(); err != nil {
			return err
		}
		typ := oidString(t)
		if seen[typ] {
			return bad("signed attribute %s appears twice; each attribute type may appear only once", oidLong(typ))
		}
		seen[typ] = true
		if len(vals.kids) == 0 {
			return bad("signed attribute %s has no values", oidLong(typ))
		}
		switch typ {
		case oidContentType:
			if len(vals.kids) != 1 || vals.kids[0].id != idOID || oidString(vals.kids[0]) != oidTSTInfo {
				return bad("content-type attribute must have the single value id-ct-TSTInfo (%s), the eContentType", oidTSTInfo)
			}
		case oidMessageDigest:
			if len(vals.kids) != 1 || vals.kids[0].id != idOctetString {
				return bad("message-digest attribute must have exactly one value, an OCTET STRING; it has %d values", len(vals.kids))
			}
			if n := len(vals.kids[0].body); n != digestSize {
				return bad("message-digest attribute is %d bytes; the signer's digest algorithm makes %d", n, digestSize)
			}
		}
	}
	for _, typ := range []string{oidContentType, oidMessageDigest} {
		if !seen[typ] {
			return bad("signedAttrs has no %s attribute (%s); RFC 5652 5.3 requires it", oidNames[typ], typ)
		}
	}
	return nil
}

// checkTSTInfo checks the signed content of a token (RFC 3161 2.4.2).
//
//	TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId, messageImprint MessageImprint,
//	  serialNumber INTEGER, genTime GeneralizedTime, accuracy Accuracy OPTIONAL,
//	  ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL, tsa [0] GeneralName OPTIONAL,
//	  extensions [1] IMPLICIT Extensions OPTIONAL }
func checkTSTInfo(tst *elem) error {
	if tst.id != idSequence {
		return bad("eContent holds %s, not a TSTInfo SEQUENCE", describe(tst))
	}
	f := fieldsOf("TSTInfo", tst)
	ver, err := f.take(idInteger, "version")
	if err != nil {
		return err
	}
	if v, ok := intValue(ver); !ok || v != 1 {
		return bad("TSTInfo version is %s; RFC 3161 defines only version 1", intString(ver))
	}
	if _, err := f.take(idOID, "policy"); err != nil {
		return err
	}
	mi, err := f.take(idSequence, "messageImprint")
	if err != nil {
		return err
	}
	// MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }
	mf := fieldsOf("TSTInfo messageImprint", mi)
	ha, err := mf.take(idSequence, "hashAlgorithm")
	if err != nil {
		return err
	}
	hm, err := mf.take(idOctetString, "hashedMessage")
	if err != nil {
		return err
	}
	if err := mf.done(); err != nil {
		return err
	}
	hash, params, err := algID("TSTInfo messageImprint hashAlgorithm", ha)
	if err != nil {
		return err
	}
	size, ok := hashes[hash]
	if !ok {
		return bad("messageImprint uses %s; only sha256, sha384 and sha512 are accepted", oidLong(hash))
	}
	// Signed, so not malleable: accept both spellings clients send (digitorus
	// writes NULL).
	if params != nil && params.id != idNull {
		return bad("messageImprint hashAlgorithm %s has %s parameters; they must be absent or NULL", oidName(hash), tagName(params))
	}
	if len(hm.body) != size {
		return bad("messageImprint hashedMessage is %d bytes; a %s digest is %d", len(hm.body), oidName(hash), size)
	}
	if _, err := f.take(idInteger, "serialNumber"); err != nil {
		return err
	}
	// parse checked the DER form YYYYMMDDHHMMSS[.f]Z.
	if _, err := f.take(idGenTime, "genTime"); err != nil {
		return err
	}
	f.maybe(idSequence) // accuracy
	if ord := f.maybe(idBoolean); ord != nil && ord.body[0] == 0 {
		return bad("TSTInfo ordering is encoded as FALSE at offset %d; DER omits a value equal to its DEFAULT", ord.off)
	}
	f.maybe(idInteger)  // nonce
	f.maybe(idCtx0Cons) // tsa
	f.maybe(idCtx1Cons) // extensions
	return f.done()
}
