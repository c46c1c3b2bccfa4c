package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// tufRepo is a TUF repository built with go-tuf's metadata API alone (not
// signet's ceremony code, which this must not depend on to be a check of
// it): root keys a and b, threshold 2; a signs the other roles.
type tufRepo struct {
	t     *testing.T
	a, b  signature.Signer
	files map[string][]byte
}

func newTUFRepo(t *testing.T, timestampExpires time.Time) *tufRepo {
	t.Helper()
	r := &tufRepo{t: t, a: edSigner(t), b: edSigner(t), files: map[string][]byte{}}
	root := metadata.Root(time.Now().Add(time.Hour))
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		r.addKey(root, r.a, role)
	}
	r.addKey(root, r.b, metadata.ROOT)
	root.Signed.Roles[metadata.ROOT].Threshold = 2
	r.put("1.root.json", root, r.a, r.b)

	data := []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`)
	tf, err := metadata.TargetFile().FromBytes(TUFTrustedRootTarget, data, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	r.files["targets/"+hex.EncodeToString(sum[:])+"."+TUFTrustedRootTarget] = data
	targets := metadata.Targets(time.Now().Add(time.Hour))
	targets.Signed.Targets[TUFTrustedRootTarget] = tf
	r.put("1.targets.json", targets, r.a)
	snap := metadata.Snapshot(time.Now().Add(time.Hour))
	snap.Signed.Meta["targets.json"] = metadata.MetaFile(1)
	r.put("1.snapshot.json", snap, r.a)
	ts := metadata.Timestamp(timestampExpires)
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
	r.put("timestamp.json", ts, r.a)
	return r
}

func edSigner(t *testing.T) signature.Signer {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, err := signature.LoadED25519Signer(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *tufRepo) addKey(root *metadata.Metadata[metadata.RootType], s signature.Signer, role string) {
	pub, _ := s.PublicKey()
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := root.Signed.AddKey(k, role); err != nil {
		r.t.Fatal(err)
	}
}

func put[T metadata.Roles](r *tufRepo, name string, md *metadata.Metadata[T], by ...signature.Signer) {
	for _, s := range by {
		if _, err := md.Sign(s); err != nil {
			r.t.Fatal(err)
		}
	}
	b, err := md.ToBytes(true)
	if err != nil {
		r.t.Fatal(err)
	}
	r.files[name] = b
}

func (r *tufRepo) put(name string, md any, by ...signature.Signer) {
	switch m := md.(type) {
	case *metadata.Metadata[metadata.RootType]:
		put(r, name, m, by...)
	case *metadata.Metadata[metadata.TargetsType]:
		put(r, name, m, by...)
	case *metadata.Metadata[metadata.SnapshotType]:
		put(r, name, m, by...)
	case *metadata.Metadata[metadata.TimestampType]:
		put(r, name, m, by...)
	}
}

func (r *tufRepo) serve() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, ok := r.files[strings.TrimPrefix(req.URL.Path, "/tuf/")]
		if !ok {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write(b)
	}))
	r.t.Cleanup(srv.Close)
	return srv.URL + "/tuf"
}

// The repository as built is fetched; each refusal names its cause: an
// expired timestamp, and a root version 2 signed by one of the two keys
// its predecessor requires.
func TestFetchOverTUFNamesTheCause(t *testing.T) {
	good := newTUFRepo(t, time.Now().Add(time.Hour))
	got, err := FetchOverTUF(good.serve(), good.files["1.root.json"], nil, TUFTrustedRootTarget)
	if err != nil || len(got[TUFTrustedRootTarget]) == 0 {
		t.Fatalf("the well-formed repository: %v", err)
	}

	expired := newTUFRepo(t, time.Now().Add(-time.Minute))
	_, err = FetchOverTUF(expired.serve(), expired.files["1.root.json"], nil, TUFTrustedRootTarget)
	var te *TUFError
	if !errors.As(err, &te) || te.Cause != TUFExpired || !strings.Contains(err.Error(), "expired metadata") || !strings.Contains(err.Error(), "timestamp.json") {
		t.Errorf("an expired timestamp: %v", err)
	}

	below := newTUFRepo(t, time.Now().Add(time.Hour))
	root2, err := metadata.Root().FromBytes(below.files["1.root.json"])
	if err != nil {
		t.Fatal(err)
	}
	root2.ClearSignatures()
	root2.Signed.Version = 2
	root2.Signed.Roles[metadata.ROOT].Threshold = 1 // its own threshold is met; 1.root.json's 2 is not
	below.put("2.root.json", root2, below.a)
	_, err = FetchOverTUF(below.serve(), below.files["1.root.json"], nil, TUFTrustedRootTarget)
	if !errors.As(err, &te) || te.Cause != TUFThreshold || !strings.Contains(err.Error(), "threshold not met") || !strings.Contains(err.Error(), "got 1, want 2") {
		t.Errorf("a root below its predecessor's threshold: %v", err)
	}
}
