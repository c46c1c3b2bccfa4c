package tuf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func serve(t *testing.T, r *Repo) string {
	t.Helper()
	mux := http.NewServeMux()
	r.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/tuf"
}

// sigstore-go's TUF client, pinned to the repository's root, fetches the
// trust files; after the trusted root changes and the server restarts, it
// follows to the new version, and the versions only grow.
func TestSigstoreGoClientFollowsTheRepository(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	trusted := []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}` + "\n")
	r, err := Open(Options{Dir: dir, Key: key, Targets: map[string][]byte{TrustedRootTarget: trusted, SigningConfigTarget: []byte("{}\n")}})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, r)
	pinned := r.Root()
	client := func() *sgtuf.Client {
		c, err := sgtuf.New(&sgtuf.Options{Root: pinned, RepositoryBaseURL: url, CachePath: t.TempDir(), DisableLocalCache: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	got, err := client().GetTarget(TrustedRootTarget)
	if err != nil || !bytes.Equal(got, trusted) {
		t.Fatalf("trusted_root.json over TUF: %q, %v", got, err)
	}
	if sc, err := client().GetTarget(SigningConfigTarget); err != nil || string(sc) != "{}\n" {
		t.Fatalf("signing_config.v0.2.json over TUF: %q, %v", sc, err)
	}
	r.Close()

	// Restart with a changed trusted root: a new targets version.
	changed := []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[]}` + "\n")
	r2, err := Open(Options{Dir: dir, Key: key, Targets: map[string][]byte{TrustedRootTarget: changed, SigningConfigTarget: []byte("{}\n")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	url = serve(t, r2)
	if got, err := client().GetTarget(TrustedRootTarget); err != nil || !bytes.Equal(got, changed) {
		t.Fatalf("after the change: %q, %v", got, err)
	}
	if r2.targetsV != 2 || r2.timestampV != 2 {
		t.Errorf("targets version %d, timestamp version %d after one change and one restart; want 2 and 2", r2.targetsV, r2.timestampV)
	}

	// Another key cannot take over the kept repository.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Open(Options{Dir: dir, Key: other, Targets: map[string][]byte{TrustedRootTarget: changed}}); err == nil {
		t.Error("a repository kept under one key opened under another")
	}
}

// The timestamp is re-signed before it expires.
func TestTimestampRefresh(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	r, err := Open(Options{Dir: t.TempDir(), Key: key, Targets: map[string][]byte{TrustedRootTarget: []byte("{}")}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ts, err := metadata.Timestamp().FromBytes(r.files["timestamp.json"])
	if err != nil || ts.Signed.Expires.Sub(now) < 23*time.Hour {
		t.Fatalf("timestamp %v, %v", ts, err)
	}
	now = now.Add(13 * time.Hour)
	if err := r.newTimestamp(now); err != nil {
		t.Fatal(err)
	}
	ts2, _ := metadata.Timestamp().FromBytes(r.files["timestamp.json"])
	if ts2.Signed.Version != ts.Signed.Version+1 || !ts2.Signed.Expires.After(ts.Signed.Expires) {
		t.Errorf("re-signed timestamp: version %d, expires %v", ts2.Signed.Version, ts2.Signed.Expires)
	}
}
