package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/signet-dev/signet/server/storage"
)

func testInputs(t *testing.T) Inputs {
	t.Helper()
	d, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	k, err := d.Keys(storage.KeyFiles{}, "acme")
	if err != nil {
		t.Fatal(err)
	}
	logID := make([]byte, 32)
	_, _ = rand.Read(logID)
	return Inputs{
		BaseURL:      "http://127.0.0.1:8080/",
		Operator:     "acme",
		CAChain:      k.CAChain,
		LogPublicKey: k.Log.Public().(ed25519.PublicKey),
		LogID:        logID,
		LogValidFrom: k.LogCreated,
		TSAChain:     k.TSAChain,
	}
}

// sigstore-go is the independent judge: if it loads the files and finds every
// service in them, standard clients can use this server.
func TestFilesLoadInSigstoreGo(t *testing.T) {
	in := testInputs(t)
	f, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(f.TrustedRoot)
	if err != nil {
		t.Fatalf("sigstore-go rejects trusted_root.json: %v", err)
	}
	if n := len(tr.FulcioCertificateAuthorities()); n != 1 {
		t.Fatalf("CAs: %d", n)
	}
	if n := len(tr.TimestampingAuthorities()); n != 1 {
		t.Fatalf("TSAs: %d", n)
	}
	logs := tr.RekorLogs()
	if len(logs) != 1 {
		t.Fatalf("logs: %d", len(logs))
	}
	for id, l := range logs {
		if l.BaseURL != "http://127.0.0.1:8080" || l.SignatureHashFunc == 0 {
			t.Fatalf("log %s: %+v", id, l)
		}
	}

	sc, err := root.NewSigningConfigFromJSON(f.SigningConfig)
	if err != nil {
		t.Fatalf("sigstore-go rejects signing_config.json: %v", err)
	}
	ca, err := root.SelectService(sc.FulcioCertificateAuthorityURLs(), []uint32{1}, in.CAChain[0].NotBefore.Add(1))
	if err != nil || ca.URL != "http://127.0.0.1:8080" {
		t.Fatalf("CA service %+v: %v", ca, err)
	}
	rekor, err := root.SelectServices(sc.RekorLogURLs(), sc.RekorLogURLsConfig(), []uint32{2}, in.LogValidFrom.Add(1))
	if err != nil || len(rekor) != 1 || rekor[0].MajorAPIVersion != 2 {
		t.Fatalf("Rekor services %+v: %v", rekor, err)
	}
	tsa, err := root.SelectServices(sc.TimestampAuthorityURLs(), sc.TimestampAuthorityURLsConfig(), []uint32{1}, in.TSAChain[0].NotBefore.Add(1))
	if err != nil || len(tsa) != 1 || tsa[0].URL != "http://127.0.0.1:8080/api/v1/timestamp" {
		t.Fatalf("TSA services %+v: %v", tsa, err)
	}
}

func TestServed(t *testing.T) {
	f, err := Build(testInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string][]byte{TrustedRootPath: f.TrustedRoot, SigningConfigPath: f.SigningConfig} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != string(want) || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func TestBuildRefusesMissingMaterial(t *testing.T) {
	in := testInputs(t)
	in.LogID = nil
	if _, err := Build(in); err == nil {
		t.Fatal("built trust files without a log ID")
	}
	in = testInputs(t)
	in.BaseURL = ""
	if _, err := Build(in); err == nil {
		t.Fatal("built trust files without a URL")
	}
}
