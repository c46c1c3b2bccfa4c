//go:build cgo

package keyref

// PKCS#11 on miekg/pkcs11, the Go binding every PKCS#11 library in Go
// builds on (ThalesGroup/crypto11 included). crypto11 has no Ed25519 keys,
// and the log's checkpoint key is Ed25519 (C2SP signed note), and two
// libraries cannot share one module in one process: each calls
// C_Initialize and C_Finalize on its own. So signet drives the module
// itself: one initialisation per module, one login per token, a pool of
// sessions per key.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 v3.0 constants miekg/pkcs11 v1.1 does not define.
const (
	ckkECEdwards            = 0x40
	ckmECEdwardsKeyPairGen  = 0x1055
	ckmEdDSA                = 0x1057
	ckrAlreadyInitialized   = pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED
	ckrUserAlreadyLoggedIn  = pkcs11.CKR_USER_ALREADY_LOGGED_IN
	maxSessionsPerKeyFactor = 2 // sessions per key: this × GOMAXPROCS
)

var (
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// modules holds one initialised context per module path for the process.
var modules = struct {
	sync.Mutex
	m map[string]*pkcs11.Ctx
	// loggedIn: the PIN each token (module path + slot) was logged in
	// with; login state is per application and token in PKCS#11, not per
	// session, so another PIN for the same token is compared, not tried.
	loggedIn map[string]string
}{m: map[string]*pkcs11.Ctx{}, loggedIn: map[string]string{}}

func loadModule(u *PKCS11URI, path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if c, ok := modules.m[path]; ok {
		return c, nil
	}
	c := pkcs11.New(path)
	if c == nil {
		return nil, &Error{Ref: u.Raw, Cause: ErrModule, Detail: fmt.Sprintf("%s cannot be loaded (check the path and that it is a PKCS#11 module for this platform)", path)}
	}
	if err := c.Initialize(); err != nil && !isCKR(err, ckrAlreadyInitialized) {
		c.Destroy()
		return nil, &Error{Ref: u.Raw, Cause: ErrModule, Detail: "C_Initialize of " + path, Err: err}
	}
	modules.m[path] = c
	return c, nil
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// token is one logged-in token of a module.
type token struct {
	ctx  *pkcs11.Ctx
	slot uint
	uri  *PKCS11URI
}

func openToken(u *PKCS11URI, getenv func(string) string) (*token, error) {
	path, err := u.module(getenv)
	if err != nil {
		return nil, err
	}
	c, err := loadModule(u, path)
	if err != nil {
		return nil, err
	}
	slots, err := c.GetSlotList(true)
	if err != nil {
		return nil, &Error{Ref: u.Raw, Cause: ErrModule, Detail: "listing slots", Err: err}
	}
	var seen []string
	found := false
	var slot uint
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue
		}
		label, serial := strings.TrimRight(ti.Label, " \x00"), strings.TrimRight(ti.SerialNumber, " \x00")
		seen = append(seen, fmt.Sprintf("%q (serial %s, slot %d)", label, serial, s))
		if (u.Token == "" || u.Token == label) && (u.Serial == "" || u.Serial == serial) && (u.SlotID == nil || *u.SlotID == s) {
			slot, found = s, true
			break
		}
	}
	if !found {
		have := "the module has no initialised token"
		if len(seen) > 0 {
			have = "the module has " + strings.Join(seen, ", ")
		}
		return nil, &Error{Ref: u.Raw, Cause: ErrTokenNotFound, Detail: have}
	}
	t := &token{ctx: c, slot: slot, uri: u}
	pin, err := u.pin(getenv)
	if err != nil {
		return nil, err
	}
	if err := t.login(path, pin); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *token) login(path, pin string) error {
	key := fmt.Sprintf("%s#%d", path, t.slot)
	modules.Lock()
	defer modules.Unlock()
	if have, ok := modules.loggedIn[key]; ok {
		if have != pin {
			return &Error{Ref: t.uri.Raw, Cause: ErrPIN, Detail: "the token is already open in this process under another PIN; check the PIN (pin-source, pin-value or SIGNET_PKCS11_PIN)"}
		}
		return nil
	}
	s, err := t.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return &Error{Ref: t.uri.Raw, Cause: ErrModule, Detail: "opening a session", Err: err}
	}
	// This session stays open: login state ends with the token's last session.
	if err := t.ctx.Login(s, pkcs11.CKU_USER, pin); err != nil && !isCKR(err, ckrUserAlreadyLoggedIn) {
		t.ctx.CloseSession(s)
		detail := "check the PIN (pin-source, pin-value or SIGNET_PKCS11_PIN)"
		if isCKR(err, pkcs11.CKR_PIN_LOCKED) {
			detail = "the user PIN is locked; the token's security officer must reset it"
		}
		return &Error{Ref: t.uri.Raw, Cause: ErrPIN, Detail: detail, Err: err}
	}
	modules.loggedIn[key] = pin
	return nil
}

func (t *token) session() (pkcs11.SessionHandle, error) {
	return t.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
}

func (t *token) find(s pkcs11.SessionHandle, class uint) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if t.uri.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.uri.Object))
	}
	if len(t.uri.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, t.uri.ID))
	}
	if err := t.ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	defer t.ctx.FindObjectsFinal(s)
	objs, _, err := t.ctx.FindObjects(s, 2)
	return objs, err
}

// Signer is a key pair in a PKCS#11 token.
type pkcs11Signer struct {
	t    *token
	priv pkcs11.ObjectHandle
	pub  crypto.PublicKey
	pool chan pkcs11.SessionHandle
}

// tokenSession opens the URI's token and a session on it, which the caller
// closes.
func tokenSession(u *PKCS11URI, getenv func(string) string) (*token, pkcs11.SessionHandle, error) {
	t, err := openToken(u, getenv)
	if err != nil {
		return nil, 0, err
	}
	s, err := t.session()
	if err != nil {
		return nil, 0, &Error{Ref: u.Raw, Cause: ErrModule, Detail: "opening a session", Err: err}
	}
	return t, s, nil
}

func openPKCS11(u *PKCS11URI, getenv func(string) string) (crypto.Signer, error) {
	t, s, err := tokenSession(u, getenv)
	if err != nil {
		return nil, err
	}
	defer t.ctx.CloseSession(s)
	privs, err := t.find(s, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, &Error{Ref: u.Raw, Cause: ErrModule, Detail: "searching for the private key", Err: err}
	}
	switch len(privs) {
	case 0:
		return nil, &Error{Ref: u.Raw, Cause: ErrKeyNotFound, Detail: fmt.Sprintf("the token holds no private key with %s (list them with pkcs11-tool --list-objects or softhsm2-util --show-slots)", u.describeKey())}
	case 1:
	default:
		return nil, &Error{Ref: u.Raw, Cause: ErrBadURI, Detail: fmt.Sprintf("more than one private key has %s; add id=… to name one", u.describeKey())}
	}
	pubs, err := t.find(s, pkcs11.CKO_PUBLIC_KEY)
	if err != nil || len(pubs) != 1 {
		return nil, &Error{Ref: u.Raw, Cause: ErrKeyNotFound, Detail: fmt.Sprintf("the private key with %s has no public key object of the same label/id, which signet needs to name the key", u.describeKey()), Err: err}
	}
	pub, err := publicKey(t.ctx, s, pubs[0])
	if err != nil {
		return nil, &Error{Ref: u.Raw, Cause: ErrKeyType, Err: err}
	}
	return &pkcs11Signer{t: t, priv: privs[0], pub: pub, pool: make(chan pkcs11.SessionHandle, maxSessionsPerKeyFactor*runtime.GOMAXPROCS(0))}, nil
}

func publicKey(c *pkcs11.Ctx, s pkcs11.SessionHandle, o pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	attrs, err := c.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, fmt.Errorf("reading the key type: %w", err)
	}
	kt := bytesToUint(attrs[0].Value)
	switch kt {
	case pkcs11.CKK_EC, ckkECEdwards:
		attrs, err := c.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return nil, fmt.Errorf("reading the public point: %w", err)
		}
		params, point := attrs[0].Value, attrs[1].Value
		// CKA_EC_POINT is a DER OCTET STRING; some tokens give it raw.
		var inner []byte
		if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
			point = inner
		}
		if kt == ckkECEdwards {
			if len(point) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("an EdDSA key with a %d-byte point; only Ed25519 is supported", len(point))
			}
			return ed25519.PublicKey(point), nil
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(params, &oid); err != nil {
			return nil, fmt.Errorf("EC parameters are not a named curve: %w", err)
		}
		var curve elliptic.Curve
		switch {
		case oid.Equal(oidP256):
			curve = elliptic.P256()
		case oid.Equal(oidP384):
			curve = elliptic.P384()
		case oid.Equal(oidP521):
			curve = elliptic.P521()
		case oid.Equal(oidEd25519):
			return ed25519.PublicKey(point), nil
		default:
			return nil, fmt.Errorf("EC key on curve %v; supported are P-256, P-384, P-521 and Ed25519", oid)
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pk, nil
	case pkcs11.CKK_RSA:
		attrs, err := c.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
		if err != nil {
			return nil, fmt.Errorf("reading the RSA public key: %w", err)
		}
		e := new(big.Int).SetBytes(attrs[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31 {
			return nil, errors.New("RSA public exponent out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(e.Int64())}, nil
	}
	return nil, fmt.Errorf("PKCS#11 key type %#x; supported are EC (P-256, P-384, P-521), EdDSA (Ed25519) and RSA", kt)
}

func bytesToUint(b []byte) uint {
	// CK_ULONG in host byte order, as the module wrote it.
	var v uint
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint(b[i])
	}
	return v
}

func (k *pkcs11Signer) Public() crypto.PublicKey { return k.pub }

// Sign signs with the token. ECDSA and RSA sign a digest; Ed25519 signs the
// whole message (opts.HashFunc() must be 0, as for ed25519.PrivateKey).
func (k *pkcs11Signer) Sign(_ io.Reader, data []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech *pkcs11.Mechanism
	input := data
	switch pub := k.pub.(type) {
	case ed25519.PublicKey:
		if opts != nil && opts.HashFunc() != 0 {
			return nil, errors.New("pkcs11: Ed25519 keys sign the message itself (Ed25519ph is not supported)")
		}
		mech = pkcs11.NewMechanism(ckmEdDSA, nil)
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			params, err := pssParams(opts.HashFunc(), pss, pub)
			if err != nil {
				return nil, err
			}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params)
		} else {
			prefix, ok := digestInfoPrefix[opts.HashFunc()]
			if !ok {
				return nil, fmt.Errorf("pkcs11: RSA PKCS#1 v1.5 with hash %v is not supported", opts.HashFunc())
			}
			input = append(append([]byte{}, prefix...), data...)
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		}
	}
	sig, err := k.sign(mech, input)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: signing with %s: %w", k.t.uri.Raw, err)
	}
	if pub, ok := k.pub.(*ecdsa.PublicKey); ok {
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return nil, fmt.Errorf("pkcs11: ECDSA signature of %d bytes for %s", len(sig), pub.Curve.Params().Name)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
	}
	return sig, nil
}

func (k *pkcs11Signer) sign(mech *pkcs11.Mechanism, input []byte) ([]byte, error) {
	var s pkcs11.SessionHandle
	select {
	case s = <-k.pool:
	default:
		var err error
		if s, err = k.t.session(); err != nil {
			return nil, err
		}
	}
	if err := k.t.ctx.SignInit(s, []*pkcs11.Mechanism{mech}, k.priv); err != nil {
		// A session in an unknown state is not reused.
		k.t.ctx.CloseSession(s)
		return nil, err
	}
	sig, err := k.t.ctx.Sign(s, input)
	if err != nil {
		k.t.ctx.CloseSession(s)
		return nil, err
	}
	select {
	case k.pool <- s:
	default:
		k.t.ctx.CloseSession(s)
	}
	return sig, nil
}

// DER DigestInfo prefixes (RFC 8017 §9.2 note 1).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

func pssParams(h crypto.Hash, o *rsa.PSSOptions, pub *rsa.PublicKey) ([]byte, error) {
	var alg, mgf uint
	switch h {
	case crypto.SHA256:
		alg, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	case crypto.SHA384:
		alg, mgf = pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384
	case crypto.SHA512:
		alg, mgf = pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512
	default:
		return nil, fmt.Errorf("pkcs11: RSA-PSS with hash %v is not supported", h)
	}
	salt := o.SaltLength
	switch salt {
	case rsa.PSSSaltLengthEqualsHash:
		salt = h.Size()
	case rsa.PSSSaltLengthAuto:
		salt = (pub.N.BitLen()-1+7)/8 - 2 - h.Size()
	}
	return pkcs11.NewPSSParams(alg, mgf, uint(salt)), nil
}

// Algorithm of a key GeneratePKCS11 makes.
type Algorithm string

const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	Ed25519   Algorithm = "ed25519"
)

// GeneratePKCS11 makes a key pair in the token the URI names, labelled and
// identified as the URI says, and opens it. The private key is sensitive
// and not extractable: it never leaves the token. A key of that label or id
// already there is an error, not overwritten.
func GeneratePKCS11(ref string, alg Algorithm, o Options) (crypto.Signer, error) {
	u, err := ParsePKCS11(ref)
	if err != nil {
		return nil, err
	}
	getenv := o.getenv()
	t, s, err := tokenSession(u, getenv)
	if err != nil {
		return nil, err
	}
	defer t.ctx.CloseSession(s)
	if have, err := t.find(s, pkcs11.CKO_PRIVATE_KEY); err == nil && len(have) > 0 {
		return nil, &Error{Ref: u.Raw, Cause: ErrBadURI, Detail: fmt.Sprintf("the token already holds a key with %s; name a new one, or use it as it is", u.describeKey())}
	}
	var mech *pkcs11.Mechanism
	var params []byte
	var keyType uint
	switch alg {
	case ECDSAP256:
		mech, keyType = pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil), pkcs11.CKK_EC
		params, _ = asn1.Marshal(oidP256)
	case Ed25519:
		mech, keyType = pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil), ckkECEdwards
		params, _ = asn1.Marshal(oidEd25519)
	default:
		return nil, &Error{Ref: u.Raw, Cause: ErrKeyType, Detail: fmt.Sprintf("cannot generate %q; choose %s or %s", alg, ECDSAP256, Ed25519)}
	}
	id := u.ID
	if len(id) == 0 {
		id = []byte(u.Object)
	}
	common := func(a ...*pkcs11.Attribute) []*pkcs11.Attribute {
		a = append(a, pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_ID, id), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType))
		if u.Object != "" {
			a = append(a, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
		}
		return a
	}
	pubT := common(pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	privT := common(pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true), pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	if _, _, err := t.ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{mech}, pubT, privT); err != nil {
		return nil, &Error{Ref: u.Raw, Cause: ErrKeyType, Detail: fmt.Sprintf("the token cannot generate a %s key", alg), Err: err}
	}
	if len(u.ID) == 0 {
		u.ID = id
	}
	return openPKCS11(u, getenv)
}
