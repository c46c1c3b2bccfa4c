package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// OpenKey opens the key ref names; with alg set, a key that does not exist
// yet is made: a new PEM file (mode 0600, never overwriting), or a key
// generated inside the PKCS#11 token or AWS KMS (under the URI's alias);
// other KMS keys are made with the KMS's own tools and only opened. created
// tells whether the key is new.
func OpenKey(ctx context.Context, ref string, alg keyref.Algorithm) (k crypto.Signer, created bool, err error) {
	if keyref.IsURI(ref) {
		k, err := keyref.Open(ctx, ref, keyref.Options{})
		if alg != "" && errors.Is(err, keyref.ErrKeyNotFound) {
			if keyref.IsKMS(ref) {
				k, err = keyref.GenerateKMS(ctx, ref, alg)
			} else {
				k, err = keyref.GeneratePKCS11(ref, alg, keyref.Options{})
			}
			return k, err == nil, err
		}
		return k, false, err
	}
	b, err := os.ReadFile(ref)
	if errors.Is(err, os.ErrNotExist) && alg != "" {
		k, err := newFileKey(ref, alg)
		return k, err == nil, err
	}
	if err != nil {
		return nil, false, err
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(b, cryptoutils.SkipPassword)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w (an unencrypted PEM private key is expected)", ref, err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, false, fmt.Errorf("%s: a %T cannot sign", ref, priv)
	}
	return s, false, nil
}

func newFileKey(path string, alg keyref.Algorithm) (crypto.Signer, error) {
	var k crypto.Signer
	var err error
	switch alg {
	case keyref.ECDSAP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case keyref.Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("cannot generate a %q key; choose %s or %s", alg, keyref.ECDSAP256, keyref.Ed25519)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return k, f.Close()
}

// InitOptions describe a new CA: an offline root, the issuing certificate
// the server signs with, and optionally the TSA's certificate.
type InitOptions struct {
	Out          string // directory for the certificates (and any new key files)
	RootKey      string // key reference; default <Out>/root.key
	Key          string // the server's issuing key; default <Out>/ca.key
	TSAKey       string // the server's timestamping key; empty: no TSA certificate
	Organization string
	RootValidity time.Duration
	Validity     time.Duration // of the intermediate and TSA certificates
	Now          time.Time
}

// InitResult names what InitCA wrote.
type InitResult struct {
	RootCert  string   `json:"rootCert"`
	CAChain   string   `json:"caChain"`
	TSAChain  string   `json:"tsaChain,omitempty"`
	RootKey   string   `json:"rootKey"`
	CAKey     string   `json:"caKey"`
	TSAKey    string   `json:"tsaKey,omitempty"`
	Generated []string `json:"generatedKeys"` // the references of keys made now
	NotAfter  string   `json:"notAfter"`
}

// InitCA makes a root certificate and, under it, the issuing certificate
// of the server's CA key (and of its TSA key), writing the chains the
// server's keys.caChain and keys.tsaChain name. Keys that do not exist are
// made (files, or in the PKCS#11 token). Existing certificate files are not
// overwritten.
func InitCA(ctx context.Context, o InitOptions) (*InitResult, error) {
	if o.Out == "" {
		return nil, errors.New("no output directory")
	}
	if o.Organization == "" {
		o.Organization = "signet"
	}
	if o.Now.IsZero() {
		o.Now = time.Now().UTC().Truncate(time.Second)
	}
	if o.RootValidity <= 0 {
		o.RootValidity = 10 * 365 * 24 * time.Hour
	}
	if o.Validity <= 0 {
		o.Validity = 5 * 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	r := &InitResult{RootCert: filepath.Join(o.Out, "ca-root.pem"), CAChain: filepath.Join(o.Out, "ca-chain.pem"), RootKey: o.RootKey, CAKey: o.Key, TSAKey: o.TSAKey}
	if r.RootKey == "" {
		r.RootKey = filepath.Join(o.Out, "root.key")
	}
	if r.CAKey == "" {
		r.CAKey = filepath.Join(o.Out, "ca.key")
	}
	outputs := []string{r.RootCert, r.CAChain}
	if o.TSAKey != "" {
		r.TSAChain = filepath.Join(o.Out, "tsa-chain.pem")
		outputs = append(outputs, r.TSAChain)
	}
	for _, p := range outputs {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%s exists; a CA is made once (issue new intermediates with signet ca issue-intermediate)", p)
		}
	}
	open := func(ref string) (crypto.Signer, error) {
		k, created, err := OpenKey(ctx, ref, keyref.ECDSAP256)
		if created {
			r.Generated = append(r.Generated, keyref.Redact(ref))
		}
		return k, err
	}
	rootKey, err := open(r.RootKey)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{Organization: []string{o.Organization}, CommonName: o.Organization + " " + cn}
	}
	root, err := Root(rootKey, name("root CA"), o.Now, o.Now.Add(o.RootValidity))
	if err != nil {
		return nil, err
	}
	caKey, err := open(r.CAKey)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	inter, err := Issue(rootKey, root, caKey.Public(), name("intermediate CA"), Intermediate, o.Now, o.Now.Add(o.Validity))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{r.RootCert: PEM(root), r.CAChain: PEM(inter, root)}
	if o.TSAKey != "" {
		tsaKey, err := open(o.TSAKey)
		if err != nil {
			return nil, fmt.Errorf("TSA key: %w", err)
		}
		tsa, err := Issue(rootKey, root, tsaKey.Public(), name("timestamping"), Timestamping, o.Now, o.Now.Add(o.Validity))
		if err != nil {
			return nil, err
		}
		files[r.TSAChain] = PEM(tsa, root)
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	r.RootKey, r.CAKey, r.TSAKey = keyref.Redact(r.RootKey), keyref.Redact(r.CAKey), keyref.Redact(r.TSAKey)
	r.NotAfter = inter.NotAfter.UTC().Format(time.RFC3339)
	return r, nil
}

// IssueOptions sign a server's certificate request with an offline key.
type IssueOptions struct {
	IssuerKey   string // key reference of the issuer (the root, or an organisation's CA)
	IssuerChain string // PEM: the issuer's certificate first, up to its root
	CSR         []byte
	Kind        Kind
	Validity    time.Duration
	Now         time.Time
}

// IssueFromCSR issues the certificate a CSR asks for and returns the chain
// for the server (the new certificate first, the issuer's chain after it).
// The subject is the CSR's; nothing else of the CSR is taken.
func IssueFromCSR(ctx context.Context, o IssueOptions) ([]byte, *x509.Certificate, error) {
	req, err := ParseCSR(o.CSR)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate request: %w", err)
	}
	b, err := os.ReadFile(o.IssuerChain)
	if err != nil {
		return nil, nil, err
	}
	var chain []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", o.IssuerChain, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", o.IssuerChain)
	}
	if err := CheckRoot(chain[len(chain)-1]); err != nil {
		return nil, nil, fmt.Errorf("%s must end with its root: %w", o.IssuerChain, err)
	}
	key, _, err := OpenKey(ctx, o.IssuerKey, "")
	if err != nil {
		return nil, nil, fmt.Errorf("issuer key: %w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now().UTC().Truncate(time.Second)
	}
	if o.Validity <= 0 {
		o.Validity = 5 * 365 * 24 * time.Hour
	}
	if err := CheckValid("the issuer's certificate", chain[0], o.Now); err != nil {
		return nil, nil, err
	}
	cert, err := Issue(key, chain[0], req.PublicKey, req.Subject, o.Kind, o.Now, o.Now.Add(o.Validity))
	if err != nil {
		return nil, nil, err
	}
	return PEM(append([]*x509.Certificate{cert}, chain...)...), cert, nil
}
