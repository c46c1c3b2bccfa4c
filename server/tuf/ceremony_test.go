package tuf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/internal/hsmtest"
	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// keyPair is a generated key file and its loaded forms.
type keyPair struct {
	path   string
	signer signature.Signer
	key    *metadata.Key
	id     string
}

func newKey(t *testing.T, kind string) keyPair {
	t.Helper()
	priv, _, err := GenerateKey(kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadPublicKey(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := k.ID()
	return keyPair{p, s, k, id}
}

func roleOf(th int, ks ...keyPair) *RoleKeys {
	rk := &RoleKeys{Threshold: th}
	for _, k := range ks {
		rk.Keys = append(rk.Keys, k.key)
	}
	return rk
}

func mustSign(t *testing.T, c *Ceremony, role string, k keyPair) *Status {
	t.Helper()
	st, err := c.Sign(role, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var testTargets = map[string][]byte{TrustedRootTarget: []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}` + "\n"), SigningConfigTarget: []byte("{}\n")}

// A 2-of-3 root with an ECDSA and two Ed25519 keys is signed one holder at
// a time and published; a client pinned to 1.root.json gets the targets.
// Root version 2 changes the root key set and the online key: it is
// publishable only with a threshold of the old root keys AND of the new
// ones, and the client pinned to version 1 follows it (the new online key
// signs the timestamp, which version 1 does not trust, so fetching proves
// the client walked to 2).
func TestCeremonyRootRotationIsFollowed(t *testing.T) {
	a, b, c3, d := newKey(t, "ed25519"), newKey(t, "ecdsa-p256"), newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
	tk, online1, online2 := newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
	c := &Ceremony{Dir: t.TempDir()}
	exp := time.Now().Add(DefaultRootExpiry)
	st, err := c.Init(RootChange{Expires: exp, Roles: map[string]*RoleKeys{
		metadata.ROOT: roleOf(2, a, b, c3), metadata.TARGETS: roleOf(1, tk), metadata.TIMESTAMP: roleOf(1, online1)}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.Root.Thresholds[0].Have != 0 || st.Root.Thresholds[0].Want != 2 || len(st.Root.Thresholds[0].Missing) != 3 {
		t.Fatalf("fresh root status %+v", st.Root)
	}
	if got := st.Roles[metadata.SNAPSHOT]; len(got.KeyIDs) != 1 || got.KeyIDs[0] != online1.id {
		t.Errorf("the snapshot role defaults to the online key: %+v", got)
	}
	mustSign(t, c, metadata.ROOT, a)
	if _, err := c.Targets(testTargets, time.Now().Add(DefaultTargetsExpiry)); err != nil {
		t.Fatal(err)
	}
	mustSign(t, c, metadata.TARGETS, tk)
	pub := t.TempDir()
	if _, err := c.Publish(pub); err == nil || !strings.Contains(err.Error(), "1.root.json: threshold not met") {
		t.Fatalf("publishing a 1-of-2 signed root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pub, "1.root.json")); err == nil {
		t.Fatal("a refused publish wrote the root")
	}
	if st := mustSign(t, c, metadata.ROOT, b); !st.Ready || st.Root.Thresholds[0].Have != 2 {
		t.Fatalf("after two of three: %+v %v", st.Root, st.Problems)
	}
	if _, err := c.Publish(pub); err != nil {
		t.Fatal(err)
	}

	pinned, _ := os.ReadFile(filepath.Join(c.Dir, "1.root.json"))
	r := openPublished(t, pub, online1)
	url := serve(t, r)
	fetch := func(url string) ([]byte, error) {
		cl, err := sgtuf.New(&sgtuf.Options{Root: pinned, RepositoryBaseURL: url, CachePath: t.TempDir(), DisableLocalCache: true})
		if err != nil {
			return nil, err
		}
		return cl.GetTarget(TrustedRootTarget)
	}
	if got, err := fetch(url); err != nil || !bytes.Equal(got, testTargets[TrustedRootTarget]) {
		t.Fatalf("version 1: %q, %v", got, err)
	}
	r.Close()

	// Version 2: root keys {b, c3, d}, a new online key.
	if _, err := c.NewRootVersion(RootChange{Expires: exp, Roles: map[string]*RoleKeys{
		metadata.ROOT: roleOf(2, b, c3, d), metadata.TIMESTAMP: roleOf(1, online2), metadata.SNAPSHOT: roleOf(1, online2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(metadata.ROOT, a.signer); err != nil {
		t.Fatalf("a key of the old root only must still sign (its threshold counts): %v", err)
	}
	mustSign(t, c, metadata.ROOT, d)
	st = mustSign(t, c, metadata.ROOT, c3)
	// new root: c3, d (2 of 2); old root: a, c3 (2 of 2) — ready. Undo a's
	// signature to see the old threshold decide.
	if !st.Ready {
		t.Fatalf("a, c3, d sign version 2: %+v %v", st.Root, st.Problems)
	}
	raw, _ := os.ReadFile(filepath.Join(c.Dir, "2.root.json"))
	r2, _ := metadata.Root().FromBytes(raw)
	kept := r2.Signatures[:0]
	for _, s := range r2.Signatures {
		if s.KeyID != a.id {
			kept = append(kept, s)
		}
	}
	r2.Signatures = kept
	if err := writeMeta(filepath.Join(c.Dir, "2.root.json"), r2); err != nil {
		t.Fatal(err)
	}
	st, _ = c.Status()
	if st.Ready || len(st.Root.Thresholds) != 2 || st.Root.Thresholds[0].Have != 2 || st.Root.Thresholds[1].By != "1.root.json" || st.Root.Thresholds[1].Have != 1 {
		t.Fatalf("version 2 signed by c3 and d only: %+v", st.Root)
	}
	if _, err := c.Publish(pub); err == nil || !strings.Contains(err.Error(), "2.root.json: threshold not met") || !strings.Contains(err.Error(), "1.root.json") {
		t.Fatalf("publishing version 2 without the old threshold: %v", err)
	}
	mustSign(t, c, metadata.ROOT, b) // in both roots
	if _, err := c.Publish(pub); err != nil {
		t.Fatal(err)
	}

	// The old online key no longer opens the repository; the new one does.
	if _, err := Open(Options{Dir: pub, Published: true, Online: online1.signer}); err == nil || !strings.Contains(err.Error(), "online key") {
		t.Fatalf("opened with the rotated-out online key: %v", err)
	}
	r = openPublished(t, pub, online2)
	defer r.Close()
	url = serve(t, r)
	if got, err := fetch(url); err != nil || !bytes.Equal(got, testTargets[TrustedRootTarget]) {
		t.Fatalf("a client pinned to version 1 after the rotation: %q, %v", got, err)
	}
	if v := r.rootMD.Signed.Version; v != 2 {
		t.Errorf("serving root version %d", v)
	}
}

func openPublished(t *testing.T, dir string, online keyPair) *Repo {
	t.Helper()
	r, err := Open(Options{Dir: dir, Published: true, Online: online.signer})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The server refuses a published repository that does not verify, naming
// the file and the cause: a root below its threshold copied in by hand,
// a targets file not signed by the targets keys.
func TestServerRefusesUnverifiedPublishedRepository(t *testing.T) {
	a, b, tk, online := newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ed25519")
	c := &Ceremony{Dir: t.TempDir()}
	if _, err := c.Init(RootChange{Expires: time.Now().Add(time.Hour), Roles: map[string]*RoleKeys{
		metadata.ROOT: roleOf(2, a, b), metadata.TARGETS: roleOf(1, tk), metadata.TIMESTAMP: roleOf(1, online)}}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, c, metadata.ROOT, a)
	if _, err := c.Targets(testTargets, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// By hand, bypassing publish's checks.
	pub := t.TempDir()
	copyDir(t, c.Dir, pub)
	if _, err := Open(Options{Dir: pub, Published: true, Online: online.signer}); err == nil || !strings.Contains(err.Error(), "1.root.json: threshold not met") {
		t.Fatalf("opened a root signed by 1 of 2: %v", err)
	}
	mustSign(t, c, metadata.ROOT, b)
	copyDir(t, c.Dir, pub)
	if _, err := Open(Options{Dir: pub, Published: true, Online: online.signer}); err == nil || !strings.Contains(err.Error(), "1.targets.json: threshold not met") {
		t.Fatalf("opened unsigned targets: %v", err)
	}
	mustSign(t, c, metadata.TARGETS, tk)
	copyDir(t, c.Dir, pub)
	r, err := Open(Options{Dir: pub, Published: true, Online: online.signer})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	// CopyFS does not overwrite: copy the metadata again.
	es, _ := os.ReadDir(from)
	for _, e := range es {
		if !e.IsDir() {
			b, _ := os.ReadFile(filepath.Join(from, e.Name()))
			if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// What the ceremony refuses, each naming its cause.
func TestCeremonyRefusals(t *testing.T) {
	a, tk, online, stranger := newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ed25519")
	c := &Ceremony{Dir: t.TempDir()}
	roles := func() map[string]*RoleKeys {
		return map[string]*RoleKeys{metadata.ROOT: roleOf(1, a), metadata.TARGETS: roleOf(1, tk), metadata.TIMESTAMP: roleOf(1, online)}
	}
	bad := roles()
	bad[metadata.ROOT] = roleOf(2, a)
	if _, err := c.Init(RootChange{Expires: time.Now().Add(time.Hour), Roles: bad}); err == nil || !strings.Contains(err.Error(), "root threshold 2 with 1 distinct keys") {
		t.Errorf("threshold above the keys: %v", err)
	}
	if _, err := c.Init(RootChange{Expires: time.Now().Add(time.Hour), Roles: roles()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Init(RootChange{Expires: time.Now().Add(time.Hour), Roles: roles()}); err == nil || !strings.Contains(err.Error(), "already holds a root") {
		t.Errorf("a second init: %v", err)
	}
	if _, err := c.Sign(metadata.ROOT, stranger.signer); err == nil || !strings.Contains(err.Error(), "is not a root key") {
		t.Errorf("a stranger's signature: %v", err)
	}
	if _, err := c.Sign(metadata.SNAPSHOT, a.signer); err == nil || !strings.Contains(err.Error(), "online key") {
		t.Errorf("signing the snapshot offline: %v", err)
	}
	if _, err := c.NewRootVersion(RootChange{Expires: time.Now().Add(time.Hour), Roles: map[string]*RoleKeys{}}); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("a version after an unsigned one: %v", err)
	}
	mustSign(t, c, metadata.ROOT, a)
	if _, err := c.Targets(testTargets, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustSign(t, c, metadata.TARGETS, tk)
	pub := t.TempDir()
	if _, err := c.Publish(pub); err != nil {
		t.Fatal(err)
	}
	// Another ceremony's version 1 never replaces the published one.
	other := &Ceremony{Dir: t.TempDir()}
	if _, err := other.Init(RootChange{Expires: time.Now().Add(time.Hour), Roles: roles()}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, other, metadata.ROOT, a)
	if _, err := other.Targets(testTargets, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustSign(t, other, metadata.TARGETS, tk)
	if _, err := other.Publish(pub); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Errorf("replacing a published version: %v", err)
	}
	// Expired targets are not published.
	late := &Ceremony{Dir: c.Dir, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	if _, err := late.Publish(t.TempDir()); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("publishing expired metadata: %v", err)
	}
}

// Encrypted key files need their passphrase, and say so.
func TestEncryptedKeyFile(t *testing.T) {
	priv, pubPEM, err := GenerateKey("ecdsa-p256", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(priv, []byte("ENCRYPTED SIGSTORE PRIVATE KEY")) {
		t.Fatalf("not encrypted:\n%s", priv)
	}
	dir := t.TempDir()
	p, pp := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub")
	os.WriteFile(p, priv, 0o600)
	os.WriteFile(pp, pubPEM, 0o644)
	if _, err := LoadSigner(p, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Errorf("no passphrase: %v", err)
	}
	if _, err := LoadSigner(p, func() ([]byte, error) { return []byte("wrong"), nil }); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
	s, err := LoadSigner(p, func() ([]byte, error) { return []byte("correct horse"), nil })
	if err != nil {
		t.Fatal(err)
	}
	id, _ := KeyID(s)
	k, err := LoadPublicKey(pp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := k.ID(); kid != id {
		t.Errorf("public key file's ID %s, private key's %s", kid, id)
	}
	if _, err := LoadSigner(pp, nil); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("signing with a public key file: %v", err)
	}
	if _, err := LoadSigner("pkcs11:token=x", nil); err == nil || !strings.Contains(err.Error(), "object=") {
		t.Errorf("a PKCS#11 URI naming no key: %v", err)
	}
}

// A key in a PKCS#11 token (SoftHSM2) signs TUF metadata, and its public
// half is the same TUF key whichever way it is named.
func TestTokenKeySignsMetadata(t *testing.T) {
	tok := hsmtest.New(t)
	for _, alg := range []keyref.Algorithm{keyref.Ed25519, keyref.ECDSAP256} {
		uri := tok.URI("tuf-" + string(alg))
		if _, err := keyref.GeneratePKCS11(uri, alg, keyref.Options{}); err != nil {
			t.Fatal(err)
		}
		s, err := LoadSigner(uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		key, err := LoadPublicKey(uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		root := metadata.Root(time.Now().Add(time.Hour))
		if err := root.Signed.AddKey(key, metadata.ROOT); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Sign(s); err != nil {
			t.Fatalf("%s: signing with the token: %v", alg, err)
		}
		if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
			t.Fatalf("%s: the token's signature does not verify as the root's: %v", alg, err)
		}
	}
}

// A published repository's snapshot and timestamp are re-signed by the
// online key before they expire (the hourly refresher's step), and the
// timestamp names the new snapshot; the offline root and targets stay.
func TestPublishedOnlineRolesRefresh(t *testing.T) {
	a, online := newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
	c := &Ceremony{Dir: t.TempDir()}
	if _, err := c.Init(RootChange{Expires: time.Now().Add(DefaultRootExpiry), Roles: map[string]*RoleKeys{
		metadata.ROOT: roleOf(1, a), metadata.TARGETS: roleOf(1, a), metadata.TIMESTAMP: roleOf(1, online)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Targets(testTargets, time.Now().Add(DefaultTargetsExpiry)); err != nil {
		t.Fatal(err)
	}
	mustSign(t, c, metadata.ROOT, a)
	mustSign(t, c, metadata.TARGETS, a)
	pub := t.TempDir()
	if _, err := c.Publish(pub); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r, err := Open(Options{Dir: pub, Published: true, Online: online.signer, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root := r.rootMD
	sv, tv := r.snapshotV, r.timestampV
	r.refreshDue()
	if r.snapshotV != sv || r.timestampV != tv {
		t.Fatalf("re-signed fresh metadata: snapshot %d→%d, timestamp %d→%d", sv, r.snapshotV, tv, r.timestampV)
	}
	now = now.Add(4 * 24 * time.Hour) // past half the snapshot's 7 days
	r.refreshDue()
	if r.snapshotV != sv+1 || r.timestampV != tv+1 {
		t.Fatalf("after 4 days: snapshot %d→%d, timestamp %d→%d", sv, r.snapshotV, tv, r.timestampV)
	}
	ts, err := metadata.Timestamp().FromBytes(r.files["timestamp.json"])
	if err != nil {
		t.Fatal(err)
	}
	snap, err := metadata.Snapshot().FromBytes(r.files[fmt.Sprintf("%d.snapshot.json", r.snapshotV)])
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(metadata.TIMESTAMP, ts); err != nil {
		t.Errorf("the refreshed timestamp: %v", err)
	}
	if err := root.VerifyDelegate(metadata.SNAPSHOT, snap); err != nil {
		t.Errorf("the refreshed snapshot: %v", err)
	}
	if ts.Signed.Meta["snapshot.json"].Version != r.snapshotV || !ts.Signed.Expires.After(now) || !snap.Signed.Expires.After(now.Add(6*24*time.Hour)) {
		t.Errorf("timestamp names snapshot %d (want %d), expires %v; snapshot expires %v", ts.Signed.Meta["snapshot.json"].Version, r.snapshotV, ts.Signed.Expires, snap.Signed.Expires)
	}
}
