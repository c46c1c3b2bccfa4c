package storage

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
	"strings"
	"time"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/server/pki"
)

// KeyFiles names key material the operator supplies instead of the generated
// defaults. Empty fields fall back to the keys generated in the data
// directory. Each key is a PEM file path or a key URI (core/keyref: a
// PKCS#11 URI or a KMS URI), so the private key need not be on disk.
type KeyFiles struct {
	CAKey    string `yaml:"caKey"`    // private key of the issuing CA certificate
	CAChain  string `yaml:"caChain"`  // PEM chain: issuing certificate first, root last
	LogKey   string `yaml:"logKey"`   // Ed25519 checkpoint key
	TSAKey   string `yaml:"tsaKey"`   // private key of the timestamping certificate
	TSAChain string `yaml:"tsaChain"` // PEM chain: timestamping certificate first, root last
	CTLogKey string `yaml:"ctLogKey"` // ECDSA P-256 key of the certificate transparency log

	// CARotations are later issuing keys: from each From on the CA signs
	// with it. trusted_root.json lists them at once, so clients that fetch
	// it before From trust certificates from the new key.
	CARotations []KeyRotation `yaml:"caRotations"`
	// CARetired are chains of issuing keys no longer held: listed in
	// trusted_root.json until Until, so bundles they issued still verify.
	CARetired []KeyRetired `yaml:"caRetired"`
	// TSARotations and TSARetired are the same for the TSA's key.
	TSARotations []KeyRotation `yaml:"tsaRotations"`
	TSARetired   []KeyRetired  `yaml:"tsaRetired"`
	// LogRotations are later log shards: from each From on, new entries go
	// to a new log with its own checkpoint key and origin; the shards
	// before it are frozen and still served.
	LogRotations []LogRotation `yaml:"logRotations"`
}

// LogRotation is a log shard taking entries from From on. Its origin is the
// host name its clients reach it under: Sigstore verifiers take a log's
// checkpoint origin from the host of its URL in trusted_root.json, so each
// shard needs a host name of its own.
type LogRotation struct {
	Key    string    `yaml:"key"`
	Origin string    `yaml:"origin"`
	From   time.Time `yaml:"from"`
}

// LogShard is a loaded LogRotation.
type LogShard struct {
	From   time.Time
	Origin string
	Signer crypto.Signer // Ed25519
}

// KeyRotation is a new key and chain in use from From on.
type KeyRotation struct {
	Key   string    `yaml:"key"`
	Chain string    `yaml:"chain"`
	From  time.Time `yaml:"from"`
}

// KeyRetired is the chain of a key that signed until Until.
type KeyRetired struct {
	Chain string    `yaml:"chain"`
	Until time.Time `yaml:"until"`
}

// Rotated is a loaded KeyRotation.
type Rotated struct {
	From   time.Time
	Signer crypto.Signer
	Chain  []*x509.Certificate
}

// Retired is a loaded KeyRetired.
type Retired struct {
	Chain []*x509.Certificate
	Until time.Time
}

// Keys is the key material the services sign with.
type Keys struct {
	CA      crypto.Signer
	CAChain []*x509.Certificate // issuing certificate first, root last

	Log        crypto.Signer // Ed25519
	LogCreated time.Time     // start of the log key's validity in trusted_root.json

	TSA      crypto.Signer
	TSAChain []*x509.Certificate // timestamping certificate first, root last

	// CTLog is the certificate transparency log's key; CTLogCreated starts
	// its validity in trusted_root.json. Loaded by CTLogKey.
	CTLog        crypto.Signer
	CTLogCreated time.Time

	// Generated is set when the key set was made in this call: the data
	// directory was new.
	Generated bool

	// The loaded rotations and retired chains of the CA and the TSA.
	CARotations, TSARotations []Rotated
	CARetired, TSARetired     []Retired
	// LogShards are the loaded log rotations, in configuration order.
	LogShards []LogShard

	// OnlineRoots are root private key files found in the data directory.
	// The server never uses them; while they are there, the setup is a
	// development one (anyone who reads the directory can mint a CA).
	OnlineRoots []string
}

const (
	caRootKey   = "ca-root.key"
	caRootCert  = "ca-root.pem"
	caInterKey  = "ca-intermediate.key"
	caInterCert = "ca-intermediate.pem"
	logKeyFile  = "log.key"
	ctLogKey    = "ctlog.key"
	tufKeyFile  = "tuf.key"
	tsaRootKey  = "tsa-root.key"
	tsaRootCert = "tsa-root.pem"
	tsaLeafKey  = "tsa.key"
	tsaLeafCert = "tsa.pem"
)

// HasKeys reports whether the key directory exists (a set was generated
// or copied in), and HasTUFKey whether it holds the zero-config TUF key:
// servers sharing distributed storage must not generate keys of their own.
func (d *Dir) HasKeys() bool {
	_, err := os.Stat(d.KeysDir())
	return err == nil
}

// HasCTLogKey reports whether the key directory holds the CT log's key.
func (d *Dir) HasCTLogKey() bool {
	_, err := os.Stat(filepath.Join(d.KeysDir(), ctLogKey))
	return err == nil
}

func (d *Dir) HasTUFKey() bool {
	_, err := os.Stat(filepath.Join(d.KeysDir(), tufKeyFile))
	return err == nil
}

// Keys loads the key material, generating a complete set on first start.
// Generation happens in a scratch directory that is renamed into place only
// when every file is written, so a crash never leaves half a key set.
func (d *Dir) Keys(supplied KeyFiles, organization string) (*Keys, error) {
	dir := d.KeysDir()
	generated, mkdirAfter := false, false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// Keys are made only for a new data directory: over an existing log
		// or store, new keys would be a new identity claiming the old data.
		if held := d.heldData(); len(held) > 0 {
			return nil, fmt.Errorf("key directory %s is missing, but the data directory already holds %v, made under the keys that were there: restore %s from backup (the log cannot go on under new keys); to start a new log with a new identity, use an empty data directory", dir, held, dir)
		}
		if supplied.CAKey != "" && supplied.LogKey != "" && supplied.TSAKey != "" {
			// Every key is the operator's: nothing is made, and no key of
			// the set ever lands in the data directory. The directory is
			// made once they all open, so a refused start leaves nothing.
			mkdirAfter = true
		} else if err := generateKeySet(dir, organization); err != nil {
			return nil, fmt.Errorf("generating key material in %s: %w", dir, err)
		}
		generated = true
	} else if err != nil {
		return nil, fmt.Errorf("key directory %s: %w", dir, err)
	}

	k := &Keys{Generated: generated}
	for _, f := range []string{caRootKey, tsaRootKey} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			k.OnlineRoots = append(k.OnlineRoots, filepath.Join(dir, f))
		}
	}
	var err error
	caKey, caChain := filepath.Join(dir, caInterKey), []string{filepath.Join(dir, caInterCert), filepath.Join(dir, caRootCert)}
	if supplied.CAKey != "" || supplied.CAChain != "" {
		if supplied.CAKey == "" || supplied.CAChain == "" {
			return nil, errors.New("CA keys: caKey and caChain must be given together")
		}
		caKey, caChain = supplied.CAKey, []string{supplied.CAChain}
	}
	if k.CA, k.CAChain, err = loadSignerAndChain(caKey, caChain); err != nil {
		return nil, fmt.Errorf("CA keys: %w", err)
	}
	if !k.CAChain[0].IsCA {
		return nil, fmt.Errorf("CA keys: %s is not a CA certificate (basicConstraints CA:TRUE is required to issue certificates)", k.CAChain[0].Subject)
	}
	if k.CARotations, k.CARetired, err = loadRotations("keys.caRotations", "keys.caRetired", supplied.CARotations, supplied.CARetired); err != nil {
		return nil, err
	}

	logKey := filepath.Join(dir, logKeyFile)
	if supplied.LogKey != "" {
		logKey = supplied.LogKey
	}
	if k.Log, err = loadEd25519(logKey); err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if keyref.IsURI(logKey) {
		// A token key has no file date: its validity starts with the root's
		// unless the operator dates it (keys.logKeyCreated is not needed
		// while the generated root dates the set).
		k.LogCreated = k.CAChain[len(k.CAChain)-1].NotBefore
	} else if fi, err := os.Stat(logKey); err == nil {
		k.LogCreated = fi.ModTime().UTC().Truncate(time.Second)
	}
	// The generated set is dated by its root certificate: the log key was made in the same moment.
	if supplied.LogKey == "" {
		k.LogCreated = k.CAChain[len(k.CAChain)-1].NotBefore
	}

	tsaKey, tsaChain := filepath.Join(dir, tsaLeafKey), []string{filepath.Join(dir, tsaLeafCert), filepath.Join(dir, tsaRootCert)}
	if supplied.TSAKey != "" || supplied.TSAChain != "" {
		if supplied.TSAKey == "" || supplied.TSAChain == "" {
			return nil, errors.New("TSA keys: tsaKey and tsaChain must be given together")
		}
		tsaKey, tsaChain = supplied.TSAKey, []string{supplied.TSAChain}
	}
	if k.TSA, k.TSAChain, err = loadSignerAndChain(tsaKey, tsaChain); err != nil {
		return nil, fmt.Errorf("TSA keys: %w", err)
	}
	if k.TSARotations, k.TSARetired, err = loadRotations("keys.tsaRotations", "keys.tsaRetired", supplied.TSARotations, supplied.TSARetired); err != nil {
		return nil, err
	}
	if k.LogShards, err = loadLogShards(supplied.LogRotations); err != nil {
		return nil, err
	}
	if mkdirAfter {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("key directory %s: %w", dir, err)
		}
	}
	return k, nil
}

func generateKeySet(dir, organization string) error {
	if organization == "" {
		organization = "signet"
	}
	parent := filepath.Dir(dir)
	scratch, err := os.MkdirTemp(parent, ".keys-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	now := time.Now().UTC().Truncate(time.Second)
	notAfter := now.AddDate(10, 0, 0)

	name := func(cn string) pkix.Name {
		return pkix.Name{Organization: []string{organization}, CommonName: organization + " " + cn}
	}
	rootKey, rootCert, err := newRoot(name("root CA"), now, notAfter)
	if err != nil {
		return err
	}
	interKey, interCert, err := newIssued(rootKey, rootCert, name("intermediate CA"), pki.Intermediate, now, notAfter)
	if err != nil {
		return err
	}

	_, logKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ctKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}

	tsaRootKeyV, tsaRootCertV, err := newRoot(name("TSA root"), now, notAfter)
	if err != nil {
		return err
	}
	tsaKeyV, tsaCertV, err := newIssued(tsaRootKeyV, tsaRootCertV, name("timestamping"), pki.Timestamping, now, notAfter)
	if err != nil {
		return err
	}

	files := []struct {
		name string
		data func() ([]byte, error)
		perm os.FileMode
	}{
		{caRootKey, func() ([]byte, error) { return keyPEM(rootKey) }, 0o600},
		{caRootCert, func() ([]byte, error) { return certPEM(rootCert), nil }, 0o644},
		{caInterKey, func() ([]byte, error) { return keyPEM(interKey) }, 0o600},
		{caInterCert, func() ([]byte, error) { return certPEM(interCert), nil }, 0o644},
		{logKeyFile, func() ([]byte, error) { return keyPEM(logKey) }, 0o600},
		{ctLogKey, func() ([]byte, error) { return keyPEM(ctKey) }, 0o600},
		{tsaRootKey, func() ([]byte, error) { return keyPEM(tsaRootKeyV) }, 0o600},
		{tsaRootCert, func() ([]byte, error) { return certPEM(tsaRootCertV), nil }, 0o644},
		{tsaLeafKey, func() ([]byte, error) { return keyPEM(tsaKeyV) }, 0o600},
		{tsaLeafCert, func() ([]byte, error) { return certPEM(tsaCertV), nil }, 0o644},
	}
	for _, f := range files {
		b, err := f.data()
		if err != nil {
			return err
		}
		if err := WriteFileSync(filepath.Join(scratch, f.name), b, f.perm); err != nil {
			return err
		}
	}
	if err := os.Chmod(scratch, 0o700); err != nil {
		return err
	}
	if err := os.Rename(scratch, dir); err != nil {
		return err
	}
	return syncDir(parent)
}

func newRoot(subject pkix.Name, notBefore, notAfter time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err := pki.Root(key, subject, notBefore, notAfter)
	return key, cert, err
}

func newIssued(parentKey crypto.Signer, parent *x509.Certificate, subject pkix.Name, kind pki.Kind, notBefore, notAfter time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err := pki.Issue(parentKey, parent, key.Public(), subject, kind, notBefore, notAfter)
	return key, cert, err
}

func keyPEM(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// loadSignerAndChain reads a private key and the certificates of one or more
// PEM files, and checks that the key belongs to the first certificate.
func loadSignerAndChain(keyPath string, chainPaths []string) (crypto.Signer, []*x509.Certificate, error) {
	return loadSignerAndChainAt(keyPath, chainPaths, time.Now())
}

// loadRotations loads rotations (each chain valid at its start) and
// retired chains; rotName and retName name them in messages.
func loadRotations(rotName, retName string, rot []KeyRotation, ret []KeyRetired) ([]Rotated, []Retired, error) {
	var rs []Rotated
	for i, r := range rot {
		if r.Key == "" || r.Chain == "" || r.From.IsZero() {
			return nil, nil, fmt.Errorf("%s[%d]: key, chain and from are required", rotName, i)
		}
		signer, chain, err := loadSignerAndChainAt(r.Key, []string{r.Chain}, r.From)
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d]: %w", rotName, i, err)
		}
		rs = append(rs, Rotated{From: r.From, Signer: signer, Chain: chain})
	}
	var out []Retired
	for i, r := range ret {
		if r.Chain == "" || r.Until.IsZero() {
			return nil, nil, fmt.Errorf("%s[%d]: chain and until are required", retName, i)
		}
		chain, err := LoadCertificates(r.Chain)
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d]: %w", retName, i, err)
		}
		out = append(out, Retired{Chain: chain, Until: r.Until})
	}
	return rs, out, nil
}

// loadLogShards loads the log rotations' keys; the order of the shards and
// their origins against the first log's are the server's to check.
func loadLogShards(rot []LogRotation) ([]LogShard, error) {
	var out []LogShard
	for i, r := range rot {
		if r.Key == "" || r.Origin == "" || r.From.IsZero() {
			return nil, fmt.Errorf("keys.logRotations[%d]: key, origin and from are required", i)
		}
		if !ValidShardOrigin(r.Origin) {
			return nil, fmt.Errorf("keys.logRotations[%d]: origin %q is not a host name (letters, digits, '-' and '.'); give the host name clients reach the new shard under", i, r.Origin)
		}
		signer, err := loadEd25519(r.Key)
		if err != nil {
			return nil, fmt.Errorf("keys.logRotations[%d]: %w", i, err)
		}
		out = append(out, LogShard{From: r.From, Origin: r.Origin, Signer: signer})
	}
	return out, nil
}

// ValidShardOrigin reports whether origin is a DNS host name (or an IP
// address), which is also safe as a directory name.
func ValidShardOrigin(origin string) bool {
	if origin == "" || len(origin) > 253 || strings.HasPrefix(origin, ".") || strings.HasPrefix(origin, "-") || strings.Contains(origin, "..") {
		return false
	}
	for _, c := range origin {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// loadSignerAndChainAt is loadSignerAndChain for a key first used at now (a
// rotation's start): the chain must be valid then.
func loadSignerAndChainAt(keyPath string, chainPaths []string, now time.Time) (crypto.Signer, []*x509.Certificate, error) {
	signer, err := loadSigner(keyPath)
	if err != nil {
		return nil, nil, err
	}
	var chain []*x509.Certificate
	for _, p := range chainPaths {
		certs, err := LoadCertificates(p)
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, certs...)
	}
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("%v: no certificates", chainPaths)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, nil, fmt.Errorf("%s does not hold the private key of %q (the first certificate of the chain); list the issuing certificate first", keyref.Redact(keyPath), chain[0].Subject)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, nil, fmt.Errorf("certificate chain: %q is not signed by the next certificate %q: %v; order the chain from the issuing certificate up to the root", chain[i].Subject, chain[i+1].Subject, err)
		}
	}
	for i, c := range chain {
		what := "certificate"
		if i == 0 {
			what = "the key's certificate"
		}
		if err := pki.CheckValid(what, c, now); err != nil {
			return nil, nil, err
		}
	}
	last := chain[len(chain)-1]
	if last.CheckSignatureFrom(last) != nil {
		return nil, nil, fmt.Errorf("certificate chain %v ends with %q, which is not a self-signed root; append the root certificate so clients can pin it in trusted_root.json", chainPaths, last.Subject)
	}
	return signer, chain, nil
}

func loadPrivateKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block; expected a PEM private key", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%s: encrypted private keys are not supported; decrypt it (openssl pkcs8 -in KEY -out PLAIN) and protect the file by permissions", path)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", path, block.Type)
	}
}

// loadSigner opens a key by reference: a key URI through core/keyref, else
// a PEM file.
func loadSigner(ref string) (crypto.Signer, error) {
	if keyref.IsURI(ref) {
		return keyref.Open(context.Background(), ref, keyref.Options{})
	}
	key, err := loadPrivateKey(ref)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", ref, key)
	}
	return signer, nil
}

func loadEd25519(ref string) (crypto.Signer, error) {
	k, err := loadSigner(ref)
	if err != nil {
		return nil, err
	}
	if _, ok := k.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%s: the checkpoint key must be Ed25519 (C2SP signed note), got a %T public key; make one with 'signet server keygen --algorithm ed25519 --key REF', a PEM file or a PKCS#11 key (no KMS offers Ed25519 through sigstore/sigstore)", keyref.Redact(ref), k.Public())
	}
	return k, nil
}

// CTLogKey loads the CT log's key. A key set made before signet had a CT
// log gets one when the CT log is new (ctDir holds nothing): the new log's
// identity claims no earlier data. A supplied path is only loaded.
func (d *Dir) CTLogKey(k *Keys, supplied KeyFiles, ctDir string) error {
	path := supplied.CTLogKey
	if path == "" {
		path = filepath.Join(d.KeysDir(), ctLogKey)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if entries, _ := os.ReadDir(ctDir); len(entries) > 0 {
				return fmt.Errorf("CT log key %s is missing, but %s holds a CT log made under it: restore the key from backup, or move %s away to start a new CT log", path, ctDir, ctDir)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			b, err := keyPEM(key)
			if err != nil {
				return err
			}
			if err := WriteFileSync(path, b, 0o600); err != nil {
				return fmt.Errorf("CT log key: %w", err)
			}
		}
	}
	key, err := loadSigner(path)
	if err != nil {
		return fmt.Errorf("CT log key: %w", err)
	}
	if ec, ok := key.Public().(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
		got := fmt.Sprintf("a %T public key", key.Public())
		if ok {
			got = "ECDSA on " + ec.Curve.Params().Name
		}
		return fmt.Errorf("CT log key %s: must be an ECDSA P-256 key (RFC 6962), got %s; make one with 'signet server keygen --algorithm ecdsa-p256 --key REF'", keyref.Redact(path), got)
	}
	k.CTLog = key
	if keyref.IsURI(path) {
		k.CTLogCreated = k.CAChain[len(k.CAChain)-1].NotBefore
	} else if fi, err := os.Stat(path); err == nil {
		k.CTLogCreated = fi.ModTime().UTC().Truncate(time.Second)
	}
	if supplied.CTLogKey == "" && k.CTLogCreated.Before(k.CAChain[len(k.CAChain)-1].NotBefore) {
		k.CTLogCreated = k.CAChain[len(k.CAChain)-1].NotBefore
	}
	return nil
}

// CTLogPublicKey reads the CT log's public key without making one (fsck).
func (d *Dir) CTLogPublicKey(supplied KeyFiles) (*ecdsa.PublicKey, error) {
	path := filepath.Join(d.KeysDir(), ctLogKey)
	if supplied.CTLogKey != "" {
		path = supplied.CTLogKey
	}
	key, err := loadSigner(path)
	if err != nil {
		return nil, fmt.Errorf("CT log key: %w", err)
	}
	ec, ok := key.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("CT log key %s: must be an ECDSA P-256 key, got a %T public key", keyref.Redact(path), key.Public())
	}
	return ec, nil
}

// TUFKey loads the key of the server's TUF repository (keys/tuf.key, an
// Ed25519 key made at first start of a server that has none): the
// zero-config repository signs every role with it.
func (d *Dir) TUFKey() (ed25519.PrivateKey, error) {
	path := filepath.Join(d.KeysDir(), tufKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		b, err := keyPEM(key)
		if err != nil {
			return nil, err
		}
		if err := WriteFileSync(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("TUF key: %w", err)
		}
	}
	k, err := loadPrivateKey(path)
	if err != nil {
		return nil, fmt.Errorf("TUF key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("TUF key %s: must be Ed25519 (PKCS#8), got %T", path, k)
	}
	return ek, nil
}

// TUFDir is where the TUF repository's metadata is kept.
func (d *Dir) TUFDir() string { return filepath.Join(d.root, "tuf") }

// CTLogDir is where the certificate transparency log is kept.
func (d *Dir) CTLogDir() string { return filepath.Join(d.root, "ctlog") }

// LoadCertificates reads every CERTIFICATE block of a PEM file.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificates found", path)
	}
	return out, nil
}

// LogRotationPublicKey is the checkpoint key of a log rotation's shard.
func LogRotationPublicKey(r LogRotation) (ed25519.PublicKey, error) {
	k, err := loadEd25519(r.Key)
	if err != nil {
		return nil, err
	}
	return k.Public().(ed25519.PublicKey), nil
}

// LogPublicKey reads the log's checkpoint key without generating anything,
// for tools that inspect a stopped server's data (fsck).
func (d *Dir) LogPublicKey(supplied KeyFiles) (ed25519.PublicKey, error) {
	path := filepath.Join(d.KeysDir(), logKeyFile)
	if supplied.LogKey != "" {
		path = supplied.LogKey
	}
	k, err := loadEd25519(path)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	return k.Public().(ed25519.PublicKey), nil
}
