package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	sbundle "github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/trust"
	sverify "github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// A standard Sigstore client, given only the server's two trust files, signs
// (CA + log + TSA) and verifies against the real server process unchanged.
func TestStandardClientSignsAndVerifies(t *testing.T) {
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")

	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/widget"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	artifact := []byte("release artifact\n")
	pb, tr, trJSON := sigstoreGoSign(t, p, tok, artifact)

	v, err := verify.NewVerifier(tr, verify.WithSignedCertificateTimestamps(1), verify.WithSignedTimestamps(1), verify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	san := "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
	id, err := verify.NewShortCertificateIdentity(p.URL+"/dev/oidc", "", san, "")
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle.Bundle{Bundle: pb}
	res, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(id)))
	if err != nil {
		t.Fatalf("sigstore-go does not verify the bundle signet's server produced: %v", err)
	}
	if res.Signature.Certificate.SourceRepositoryURI != "https://github.com/acme/widget" {
		t.Fatalf("certificate source repository extension: %q", res.Signature.Certificate.SourceRepositoryURI)
	}

	// signet's own offline verifier accepts what the standard client made.
	sroot, err := trust.ParseRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sbundle.FromProto(pb)
	if err != nil {
		t.Fatal(err)
	}
	sres, err := sverify.New(sroot).VerifyArtifact(ctx, sb, bytes.NewReader(artifact), sverify.Policy{
		Identity:   sverify.Exact(san),
		Issuer:     sverify.Exact(p.URL + "/dev/oidc"),
		Extensions: certext.Extensions{SourceRepositoryURI: "https://github.com/acme/widget"},
	})
	if err != nil {
		t.Fatalf("signet does not verify the sigstore-go bundle: %v", err)
	}
	if sres.Signer.SAN != san {
		t.Fatalf("signet verified signer %q", sres.Signer.SAN)
	}
	if _, err := sverify.New(sroot).VerifyArtifact(ctx, sb, strings.NewReader("another artifact"), sverify.Policy{Identity: sverify.Exact(san), Issuer: sverify.Exact(p.URL + "/dev/oidc")}); err == nil {
		t.Fatal("signet verified a changed artifact")
	}

	// Another identity must not verify.
	other, _ := verify.NewShortCertificateIdentity(p.URL+"/dev/oidc", "", "https://github.com/evil/fork/.github/workflows/release.yml@refs/heads/main", "")
	if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(other))); err == nil {
		t.Fatal("verified with the wrong identity")
	}
}

// An entry the log acknowledged survives kill -9: after a crash under load
// and a restart, every acknowledged entry is included in the new checkpoint.
func TestAcknowledgedEntriesSurviveKill9(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	type acked struct {
		index uint64
		body  []byte
	}
	var (
		mu    sync.Mutex
		acks  []acked
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		httpc = &http.Client{Timeout: 10 * time.Second}
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := httpc.Post(p.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(hashedRekordRequest(key)))
				if err != nil {
					return // the server is gone
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
					continue
				}
				var tle struct {
					LogIndex          string `json:"logIndex"`
					CanonicalizedBody []byte `json:"canonicalizedBody"`
				}
				if json.Unmarshal(body, &tle) != nil {
					continue // cut off mid-answer: not acknowledged
				}
				var idx uint64
				fmt.Sscan(tle.LogIndex, &idx)
				mu.Lock()
				acks = append(acks, acked{idx, tle.CanonicalizedBody})
				mu.Unlock()
			}
		}()
	}
	// Let load build up, then crash the server in the middle of it.
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	close(stop)
	wg.Wait()
	if len(acks) < 50 {
		t.Fatalf("only %d entries acknowledged before the crash; the load did not build up", len(acks))
	}

	p2 := servertest.Start(t, data, "--dev-oidc")
	tr2, err := p2.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(trJSON, tr2) {
		// Same data directory, same keys, same URL: the trust file is stable but
		// the port differs across restarts, so compare the log key instead.
		if logKey(t, trJSON) != logKey(t, tr2) {
			t.Fatal("log key changed across restart")
		}
	}

	pub, origin := logKeyAndOrigin(t, tr2, p2)
	verifier := noteVerifier(t, origin, pub)
	fetcher, err := client.NewHTTPFetcher(mustURL(t, p2.URL+"/api/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Acknowledged entries are durably integrated; tessera publishes a
	// checkpoint covering them within its checkpoint interval after restart.
	var maxIdx uint64
	for _, a := range acks {
		maxIdx = max(maxIdx, a.index)
	}
	var cp *log.Checkpoint
	for deadline := time.Now().Add(10 * time.Second); ; {
		cp, _, _, err = client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, verifier, origin)
		if err != nil {
			t.Fatalf("checkpoint after restart: %v", err)
		}
		if cp.Size > maxIdx || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pbld, err := client.NewProofBuilder(ctx, cp.Size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acks {
		if a.index >= cp.Size {
			t.Fatalf("acknowledged entry %d is beyond the checkpoint after restart (size %d)", a.index, cp.Size)
		}
		hashes, err := pbld.InclusionProof(ctx, a.index)
		if err != nil {
			t.Fatalf("inclusion proof for %d: %v", a.index, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, cp.Size, rfc6962.DefaultHasher.HashLeaf(a.body), hashes, cp.Hash); err != nil {
			t.Fatalf("acknowledged entry %d is not in the log after kill -9: %v", a.index, err)
		}
	}
	t.Logf("%d acknowledged entries all present after kill -9 (tree size %d)", len(acks), cp.Size)
}

func TestGracefulShutdownAndRestartKeepsKeys(t *testing.T) {
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	before, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := p.Get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), "signet_http_requests_total") {
		t.Fatal("/metrics lacks signet_http_requests_total")
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p2 := servertest.Start(t, data, "--dev-oidc")
	after, err := p2.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	if logKey(t, before) != logKey(t, after) {
		t.Fatal("keys changed across restart")
	}
}

func TestServerRefusesBadStart(t *testing.T) {
	bin := servertest.Binary(t)
	data := t.TempDir()

	// No issuer at all: the CA could never issue, so the server says how to fix it.
	if _, err := servertest.StartErr(bin, data); err == nil || !strings.Contains(err.Error(), "no OIDC issuer is configured") {
		t.Fatalf("want no-issuer error, got %v", err)
	}
	// A typo in the config file is an error, not a silent default.
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	os.WriteFile(cfg, []byte("devOIDC: true\nlogg:\n  origin: x\n"), 0o600)
	if _, err := servertest.StartErr(bin, data, "--config", cfg); err == nil || !strings.Contains(err.Error(), "logg") {
		t.Fatalf("want unknown-field error, got %v", err)
	}
	// Two servers on one data directory would corrupt the log.
	servertest.Start(t, data, "--dev-oidc")
	if _, err := servertest.StartErr(bin, data, "--dev-oidc"); err == nil || !strings.Contains(err.Error(), "in use by another signet server") {
		t.Fatalf("want data-dir-in-use error, got %v", err)
	}
}

func logKey(t *testing.T, trJSON []byte) string {
	t.Helper()
	var tr struct {
		Tlogs []struct {
			PublicKey struct {
				RawBytes string `json:"rawBytes"`
			} `json:"publicKey"`
		} `json:"tlogs"`
	}
	if err := json.Unmarshal(trJSON, &tr); err != nil || len(tr.Tlogs) != 1 {
		t.Fatalf("trusted root: %v", err)
	}
	return tr.Tlogs[0].PublicKey.RawBytes
}

func logKeyAndOrigin(t *testing.T, trJSON []byte, p *servertest.Process) (ed25519.PublicKey, string) {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(logKey(t, trJSON))
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := p.Get("/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	origin, _, _ := strings.Cut(string(cp), "\n")
	return k.(ed25519.PublicKey), origin
}

// noteVerifier builds the C2SP signed-note verifier for an Ed25519 log key.
func noteVerifier(t *testing.T, name string, pub ed25519.PublicKey) note.Verifier {
	t.Helper()
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(append([]byte{0x01}, pub...))
	hash := binary.BigEndian.Uint32(h.Sum(nil)[:4])
	vkey := fmt.Sprintf("%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(append([]byte{0x01}, pub...)))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestServesTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSignedTLS(t, dir)
	p := servertest.Start(t, filepath.Join(dir, "data"), "--dev-oidc", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(p.URL, "https://") {
		t.Fatalf("server URL %q is not https", p.URL)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(p.URL + "/trust/signing_config.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The trust files name the https endpoints clients must use.
	if resp.StatusCode != 200 || !strings.Contains(string(body), p.URL+"/api/v1/timestamp") {
		t.Fatalf("signing config over TLS: %d %s", resp.StatusCode, body)
	}
	// Plain HTTP to a TLS listener gets no service.
	if resp, err := http.Get(strings.Replace(p.URL, "https://", "http://", 1) + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("TLS listener answered plain HTTP")
	}
}

// selfSignedTLS writes a TLS certificate for 127.0.0.1 and its key into dir.
func selfSignedTLS(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

// Every identity shape the development issuer mints becomes a certificate
// through the real process, issued to a standard client, with the SAN
// Fulcio's certificate specification gives that identity type.
func TestCertificatesForEveryIdentityType(t *testing.T) {
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	cases := []struct {
		kind      string
		params    url.Values
		email     string
		uriPrefix string
	}{
		{"github", url.Values{"repository": {"acme/widget"}}, "", "https://github.com/acme/widget/.github/workflows/"},
		{"gitlab", nil, "", "https://gitlab.com/"},
		{"kubernetes", url.Values{"namespace": {"ci"}, "serviceaccount": {"builder"}}, "", "https://kubernetes.io/namespaces/ci/serviceaccounts/builder"},
		{"buildkite", nil, "", "https://buildkite.com/"},
		{"circleci", nil, "", "https://circleci.com/api/v2/projects/"},
		{"spiffe", nil, "", "spiffe://example.org/"},
		{"email", url.Values{"email": {"alice@example.com"}}, "alice@example.com", ""},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			params := url.Values{"kind": {tc.kind}}
			for k, v := range tc.params {
				params[k] = v
			}
			tok, err := p.Token(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := sign.NewEphemeralKeypair(nil)
			if err != nil {
				t.Fatal(err)
			}
			der, err := sign.NewFulcio(&sign.FulcioOptions{BaseURL: p.URL}).GetCertificate(ctx, kp, &sign.CertificateProviderOptions{IDToken: tok})
			if err != nil {
				t.Fatalf("standard Fulcio client refused: %v", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if cert.NotAfter.Sub(cert.NotBefore) != 10*time.Minute {
				t.Fatalf("validity %v, want 10m", cert.NotAfter.Sub(cert.NotBefore))
			}
			switch {
			case tc.email != "":
				if len(cert.EmailAddresses) != 1 || cert.EmailAddresses[0] != tc.email || len(cert.URIs) != 0 {
					t.Fatalf("SAN emails %v URIs %v", cert.EmailAddresses, cert.URIs)
				}
			default:
				if len(cert.URIs) != 1 || !strings.HasPrefix(cert.URIs[0].String(), tc.uriPrefix) || len(cert.EmailAddresses) != 0 {
					t.Fatalf("SAN URIs %v, want one starting %s", cert.URIs, tc.uriPrefix)
				}
			}
		})
	}

	// A token for another audience is refused with the reason, and nothing is issued.
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "audience": {"someone-else"}})
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := sign.NewEphemeralKeypair(nil)
	_, err = sign.NewFulcio(&sign.FulcioOptions{BaseURL: p.URL, Retries: 0}).GetCertificate(ctx, kp, &sign.CertificateProviderOptions{IDToken: tok})
	if err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("want an audience refusal, got %v", err)
	}
}

// sigstoreGoSign signs artifact with sigstore-go against the server, given
// only its two trust files and an identity token, and returns the bundle
// and the trusted root it was made under (parsed and as served).
func sigstoreGoSign(t *testing.T, p *servertest.Process, tok string, artifact []byte) (*protobundle.Bundle, *root.TrustedRoot, []byte) {
	t.Helper()
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	scJSON, err := p.Get("/trust/signing_config.json")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := root.NewSigningConfigFromJSON(scJSON)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca, err := root.SelectService(sc.FulcioCertificateAuthorityURLs(), sign.FulcioAPIVersions, now)
	if err != nil {
		t.Fatal(err)
	}
	rekors, err := root.SelectServices(sc.RekorLogURLs(), sc.RekorLogURLsConfig(), sign.RekorAPIVersions, now)
	if err != nil {
		t.Fatal(err)
	}
	tsas, err := root.SelectServices(sc.TimestampAuthorityURLs(), sc.TimestampAuthorityURLsConfig(), sign.TimestampAuthorityAPIVersions, now)
	if err != nil {
		t.Fatal(err)
	}
	opts := sign.BundleOptions{
		CertificateProvider:        sign.NewFulcio(&sign.FulcioOptions{BaseURL: ca.URL}),
		CertificateProviderOptions: &sign.CertificateProviderOptions{IDToken: tok},
		TrustedRoot:                tr,
		Context:                    context.Background(),
	}
	for _, r := range rekors {
		opts.TransparencyLogs = append(opts.TransparencyLogs, sign.NewRekor(&sign.RekorOptions{BaseURL: r.URL, Version: r.MajorAPIVersion}))
	}
	for _, ts := range tsas {
		opts.TimestampAuthorities = append(opts.TimestampAuthorities, sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: ts.URL}))
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, kp, opts)
	if err != nil {
		t.Fatalf("sigstore-go could not sign against signet: %v", err)
	}
	return pb, tr, trJSON
}
