package server_test

import (
	"database/sql"

	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/go-sql-driver/mysql"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/go-jose/go-jose/v4"
	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/signet-dev/signet/core/fulcio"
	coresigner "github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/timelog"
	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/servertest"
	"github.com/signet-dev/signet/server/tuf"
)

// configCase sets one or more documented config keys to a value other than
// the default and checks what that changes on the running server.
type configCase struct {
	keys []string // the documented keys (dotted paths) the case covers
	// setup writes what the case needs into dir and returns the YAML config
	// and the check to run against the server it configures.
	setup func(t *testing.T, dir string) (string, func(t *testing.T, p *servertest.Process))
	args  []string // more server flags
	// raw starts the server without servertest's --addr and --data, for the
	// keys those flags would override; args then gives what is needed.
	raw bool
}

// TestEveryConfigKeyTakesEffect is the contract of docs/server.md's
// configuration file: every key it documents is a key of the Config type,
// every key of the Config type is documented, and each is set here to a
// non-default value whose effect is observed on the real server process.
func TestEveryConfigKeyTakesEffect(t *testing.T) {
	cases := configCases(t)
	covered := map[string]bool{}
	for _, c := range cases {
		for _, k := range c.keys {
			if covered[k] {
				t.Fatalf("%s is covered twice", k)
			}
			covered[k] = true
		}
	}
	documented, inCode := documentedConfigKeys(t), configKeys(reflect.TypeOf(server.Config{}), "")
	for _, k := range documented {
		if !slices.Contains(inCode, k) {
			t.Errorf("docs/server.md documents %s, which the server does not read (an unknown key, refused at start)", k)
		}
	}
	for _, k := range inCode {
		if !slices.Contains(documented, k) {
			t.Errorf("the server reads %s, which docs/server.md does not document", k)
		}
		if !covered[k] {
			t.Errorf("no case below sets %s", k)
		}
	}
	for _, c := range cases {
		t.Run(strings.Join(c.keys, "+"), func(t *testing.T) {
			dir := t.TempDir()
			yml, check := c.setup(t, dir)
			cfg := filepath.Join(dir, "server.yaml")
			if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--config", cfg}, c.args...)
			var p *servertest.Process
			if c.raw {
				p = servertest.StartArgs(t, args...)
			} else {
				p = servertest.Start(t, filepath.Join(dir, "data"), args...)
			}
			check(t, p)
		})
	}
}

func configCases(t *testing.T) []configCase {
	return []configCase{
		{keys: []string{"addr"}, raw: true, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			port := servertest.FreePort(t)
			return fmt.Sprintf("addr: 127.0.0.1:%d\ndevOIDC: true\ndata: %s\n", port, filepath.Join(dir, "data")), func(t *testing.T, p *servertest.Process) {
				if want := fmt.Sprintf("http://127.0.0.1:%d", port); p.URL != want {
					t.Errorf("listening at %s, want %s", p.URL, want)
				}
			}
		}},
		// The admin listener serves metrics, health and profiling; the
		// public one no longer serves metrics.
		{keys: []string{"adminAddr"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			port := servertest.FreePort(t)
			admin := fmt.Sprintf("http://127.0.0.1:%d", port)
			return fmt.Sprintf("adminAddr: 127.0.0.1:%d\n", port), func(t *testing.T, p *servertest.Process) {
				for path, want := range map[string]string{"/metrics": "signet_build_info", "/readyz": "ready", "/healthz": "ok", "/debug/pprof/cmdline": "server"} {
					if code, body := getStatus(t, admin+path); code != http.StatusOK || !strings.Contains(body, want) {
						t.Errorf("admin %s: %d %.200q", path, code, body)
					}
				}
				if code, _ := getStatus(t, p.URL+"/metrics"); code != http.StatusNotFound {
					t.Errorf("public /metrics with an admin listener: %d, want 404", code)
				}
				if code, _ := getStatus(t, p.URL+"/readyz"); code != http.StatusOK {
					t.Errorf("public /readyz: %d (load balancers probe it there)", code)
				}
			}
		}},
		{keys: []string{"url"}, raw: true, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			port := servertest.FreePort(t)
			public := fmt.Sprintf("http://localhost:%d", port)
			return fmt.Sprintf("url: %s\naddr: 127.0.0.1:%d\ndata: %s\ndevOIDC: true\n", public, port, filepath.Join(dir, "data")), func(t *testing.T, p *servertest.Process) {
				if p.URL != public {
					t.Errorf("server says it is at %s, want %s", p.URL, public)
				}
				tr, sc := trustFiles(t, p)
				if tr.Tlogs[0].BaseURL != public || tr.CAs[0].URI != public || sc.CAURLs[0].URL != public || sc.TSAURLs[0].URL != public+"/api/v1/timestamp" {
					t.Errorf("trust files do not name %s: %+v %+v", public, tr, sc)
				}
				disc, err := p.Get("/dev/oidc/.well-known/openid-configuration")
				if err != nil || !strings.Contains(string(disc), `"issuer":"`+public+`/dev/oidc"`) {
					t.Errorf("development issuer: %s %v", disc, err)
				}
			}
		}},
		{keys: []string{"data"}, raw: true, args: []string{"--addr", "127.0.0.1:0"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			data := filepath.Join(dir, "from-config")
			return "devOIDC: true\ndata: " + data + "\n", func(t *testing.T, p *servertest.Process) {
				if p.DataDir != data {
					t.Errorf("data directory %s, want %s", p.DataDir, data)
				}
				if _, err := os.Stat(filepath.Join(data, "keys", "log.key")); err != nil {
					t.Errorf("no keys in the configured data directory: %v", err)
				}
			}
		}},
		{keys: []string{"operator"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "devOIDC: true\noperator: Example Corp\n", func(t *testing.T, p *servertest.Process) {
				tr, sc := trustFiles(t, p)
				for what, op := range map[string]string{"tlog": tr.Tlogs[0].Operator, "CA": tr.CAs[0].Operator, "TSA": tr.TSAs[0].Operator, "signing config CA": sc.CAURLs[0].Operator} {
					if op != "Example Corp" {
						t.Errorf("%s operator %q", what, op)
					}
				}
				// A new data directory's generated certificates name the operator.
				if org := caChain(t, p)[1].Subject.Organization; !slices.Equal(org, []string{"Example Corp"}) {
					t.Errorf("generated CA root organization %v", org)
				}
			}
		}},
		{keys: []string{"tls.cert", "tls.key"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			certFile, keyFile, cert := selfSignedTLS(t, dir)
			return fmt.Sprintf("devOIDC: true\ntls:\n  cert: %s\n  key: %s\n", certFile, keyFile), func(t *testing.T, p *servertest.Process) {
				if !strings.HasPrefix(p.URL, "https://") {
					t.Fatalf("server URL %q is not https", p.URL)
				}
				pool := x509.NewCertPool()
				pool.AddCert(cert)
				c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				resp, err := c.Get(p.URL + "/healthz")
				if err != nil {
					t.Fatalf("HTTPS with the configured certificate: %v", err)
				}
				resp.Body.Close()
			}
		}},
		{keys: []string{"devOIDC"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "devOIDC: true\n", func(t *testing.T, p *servertest.Process) {
				if _, err := p.Get("/dev/oidc/.well-known/openid-configuration"); err != nil || p.RequestToken == "" {
					t.Fatalf("no development issuer without --dev-oidc: %v", err)
				}
				if _, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}}); err != nil {
					t.Fatal(err)
				}
			}
		}},

		// OIDC issuers: tokens from a test issuer whose keys are in a JWKS file.
		{keys: []string{"oidcIssuers[].url"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://ci.example.com", "type: email"), func(t *testing.T, p *servertest.Process) {
				mustCertify(t, p, iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com")))
				refused(t, p, iss.mint(t, emailClaims("https://other.example.com", "alice@example.com")), "https://other.example.com")
			}
		}},
		{keys: []string{"oidcIssuers[].metaIssuerURL"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("metaIssuerURL: https://*.ci.example.com", "type: email"), func(t *testing.T, p *servertest.Process) {
				mustCertify(t, p, iss.mint(t, emailClaims("https://eu.ci.example.com", "alice@example.com")))
				// Each '*' is one URL component.
				refused(t, p, iss.mint(t, emailClaims("https://a.b.ci.example.com", "alice@example.com")), "a.b.ci.example.com")
			}
		}},
		{keys: []string{"oidcIssuers[].type"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			yml := iss.config("url: https://mail.example.com", "type: email") + iss.entry("url: https://ci.example.com", "type: uri", "subjectDomain: https://ci.example.com")
			return yml, func(t *testing.T, p *servertest.Process) {
				// The type decides what a token must carry and what it certifies.
				if c := mustCertify(t, p, iss.mint(t, emailClaims("https://mail.example.com", "alice@example.com"))); !slices.Equal(c.EmailAddresses, []string{"alice@example.com"}) || len(c.URIs) != 0 {
					t.Errorf("type email: SANs %v %v", c.EmailAddresses, c.URIs)
				}
				wantURI(t, mustCertify(t, p, iss.mint(t, subClaims("https://ci.example.com", "https://ci.example.com/jobs/7"))), "https://ci.example.com/jobs/7")
				refused(t, p, iss.mint(t, subClaims("https://mail.example.com", "https://ci.example.com/jobs/7")), "email claim")
			}
		}},
		{keys: []string{"oidcIssuers[].audience"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://ci.example.com", "type: email", "audience: signet-test"), func(t *testing.T, p *servertest.Process) {
				c := emailClaims("https://ci.example.com", "alice@example.com")
				c["aud"] = "signet-test"
				mustCertify(t, p, iss.mint(t, c))
				refused(t, p, iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com")), "audience")
			}
		}},
		{keys: []string{"oidcIssuers[].subjectDomain"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://ci.example.com", "type: uri", "subjectDomain: https://build.example.com"), func(t *testing.T, p *servertest.Process) {
				wantURI(t, mustCertify(t, p, iss.mint(t, subClaims("https://ci.example.com", "https://build.example.com/jobs/1"))), "https://build.example.com/jobs/1")
				refused(t, p, iss.mint(t, subClaims("https://ci.example.com", "https://evil.example.com/jobs/1")), "outside the subject domain https://build.example.com")
			}
		}},
		{keys: []string{"oidcIssuers[].spiffeTrustDomain"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://spire.example.com", "type: spiffe", "spiffeTrustDomain: prod.example.com"), func(t *testing.T, p *servertest.Process) {
				wantURI(t, mustCertify(t, p, iss.mint(t, subClaims("https://spire.example.com", "spiffe://prod.example.com/ns/ci/sa/build"))), "spiffe://prod.example.com/ns/ci/sa/build")
				refused(t, p, iss.mint(t, subClaims("https://spire.example.com", "spiffe://other.example.org/ns/ci")), "trusted only for prod.example.com")
			}
		}},
		{keys: []string{"oidcIssuers[].platformURL"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://ghe.example.com/_services/token", "type: github-workflow", "platformURL: https://ghe.example.com"), func(t *testing.T, p *servertest.Process) {
				wantURI(t, mustCertify(t, p, iss.mint(t, githubClaims("https://ghe.example.com/_services/token"))), "https://ghe.example.com/acme/app/.github/workflows/release.yml@refs/heads/main")
			}
		}},
		{keys: []string{"oidcIssuers[].jwksFile"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			// The issuer's host does not exist: with jwksFile it is never contacted.
			return iss.config("url: https://issuer.invalid", "type: email"), func(t *testing.T, p *servertest.Process) {
				mustCertify(t, p, iss.mint(t, emailClaims("https://issuer.invalid", "alice@example.com")))
				other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				refused(t, p, (&testIssuer{key: other}).mint(t, emailClaims("https://issuer.invalid", "alice@example.com")), "")
			}
		}},

		// Operator-supplied keys.
		{keys: []string{"keys.caKey", "keys.caChain"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			_, chain := writeChain(t, dir, "ca", x509.ExtKeyUsageCodeSigning)
			return fmt.Sprintf("keys:\n  caKey: %s\n  caChain: %s\n", filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca-chain.pem")), func(t *testing.T, p *servertest.Process) {
				if got := caChain(t, p); !sameCerts(got, chain) {
					t.Errorf("trusted root CA chain is not the configured one")
				}
				tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
				if err != nil {
					t.Fatal(err)
				}
				if c := mustCertify(t, p, tok); c.CheckSignatureFrom(chain[0]) != nil {
					t.Error("certificate not issued with the configured CA key")
				}
			}
		}},
		// A rotation already started issues the certificates; the key it
		// replaced and a retired chain stay in trusted_root.json, each
		// with the period it issued in.
		{keys: []string{"keys.caRotations[].key", "keys.caRotations[].chain", "keys.caRotations[].from", "keys.caRetired[].chain", "keys.caRetired[].until"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			// The CA being rotated away from must have started before the rotation.
			writeChain(t, dir, "ca-first", x509.ExtKeyUsageCodeSigning)
			_, next := writeChain(t, dir, "ca-next", x509.ExtKeyUsageCodeSigning)
			_, retired := writeChain(t, dir, "ca-retired", x509.ExtKeyUsageCodeSigning)
			from := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
			until := from.Add(-30 * time.Minute)
			yml := fmt.Sprintf("keys:\n  caKey: %s\n  caChain: %s\n  caRotations:\n    - key: %s\n      chain: %s\n      from: %s\n  caRetired:\n    - chain: %s\n      until: %s\n",
				filepath.Join(dir, "ca-first.key"), filepath.Join(dir, "ca-first-chain.pem"),
				filepath.Join(dir, "ca-next.key"), filepath.Join(dir, "ca-next-chain.pem"), from.Format(time.RFC3339),
				filepath.Join(dir, "ca-retired-chain.pem"), until.Format(time.RFC3339))
			return yml, func(t *testing.T, p *servertest.Process) {
				tr, _ := trustFiles(t, p)
				ends := periods(t, tr.CAs)
				if len(tr.CAs) != 3 || ends["ca-next"] != from.Format(time.RFC3339)+".." ||
					!strings.HasSuffix(ends["ca-retired"], ".."+until.Format(time.RFC3339)) || !strings.HasSuffix(ends["ca-first"], ".."+from.Format(time.RFC3339)) {
					t.Errorf("trusted_root.json's CAs: %v", ends)
				}
				tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
				if err != nil {
					t.Fatal(err)
				}
				if c := mustCertify(t, p, tok); c.CheckSignatureFrom(next[0]) != nil {
					t.Error("certificate not issued by the rotation's key, whose start has passed")
				}
				wantExpiry(t, p, "ca_issuing_rotation_1", next[0])
				_ = retired
			}
		}},
		{keys: []string{"keys.logKey"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			writePEMKey(t, filepath.Join(dir, "log.key"), priv)
			return "keys:\n  logKey: " + filepath.Join(dir, "log.key") + "\n", func(t *testing.T, p *servertest.Process) {
				tr, _ := trustFiles(t, p)
				der, _ := x509.MarshalPKIXPublicKey(pub)
				if !bytes.Equal(tr.Tlogs[0].PublicKey.RawBytes, der) {
					t.Error("trusted root log key is not the configured one")
				}
				appendEntries(t, p, 1)
				cp, err := p.Get("/api/v2/checkpoint")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := note.Open(cp, note.VerifierList(noteVerifier(t, mustURL(t, p.URL).Hostname(), pub))); err != nil {
					t.Errorf("checkpoint does not verify with the configured key: %v", err)
				}
			}
		}},
		{keys: []string{"keys.tsaKey", "keys.tsaChain"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			_, chain := writeChain(t, dir, "tsa", x509.ExtKeyUsageTimeStamping)
			return fmt.Sprintf("keys:\n  tsaKey: %s\n  tsaChain: %s\n", filepath.Join(dir, "tsa.key"), filepath.Join(dir, "tsa-chain.pem")), func(t *testing.T, p *servertest.Process) {
				pemChain, err := p.Get("/api/v1/timestamp/certchain")
				if err != nil {
					t.Fatal(err)
				}
				var got []*x509.Certificate
				for b, rest := pem.Decode(pemChain); b != nil; b, rest = pem.Decode(rest) {
					c, _ := x509.ParseCertificate(b.Bytes)
					got = append(got, c)
				}
				if !sameCerts(got, chain) {
					t.Error("TSA chain is not the configured one")
				}
			}
		}},

		// A TSA rotation already started signs the timestamps (and its
		// chain is served); the key it replaced and a retired chain stay in
		// trusted_root.json with their periods.
		{keys: []string{"keys.tsaRotations[].key", "keys.tsaRotations[].chain", "keys.tsaRotations[].from", "keys.tsaRetired[].chain", "keys.tsaRetired[].until"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			writeChain(t, dir, "tsa-first", x509.ExtKeyUsageTimeStamping)
			_, next := writeChain(t, dir, "tsa-next", x509.ExtKeyUsageTimeStamping)
			writeChain(t, dir, "tsa-retired", x509.ExtKeyUsageTimeStamping)
			from := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
			until := from.Add(-30 * time.Minute)
			yml := fmt.Sprintf("keys:\n  tsaKey: %s\n  tsaChain: %s\n  tsaRotations:\n    - key: %s\n      chain: %s\n      from: %s\n  tsaRetired:\n    - chain: %s\n      until: %s\n",
				filepath.Join(dir, "tsa-first.key"), filepath.Join(dir, "tsa-first-chain.pem"),
				filepath.Join(dir, "tsa-next.key"), filepath.Join(dir, "tsa-next-chain.pem"), from.Format(time.RFC3339),
				filepath.Join(dir, "tsa-retired-chain.pem"), until.Format(time.RFC3339))
			return yml, func(t *testing.T, p *servertest.Process) {
				tr, _ := trustFiles(t, p)
				ends := periods(t, tr.TSAs)
				if len(tr.TSAs) != 3 || ends["tsa-next"] != from.Format(time.RFC3339)+".." ||
					!strings.HasSuffix(ends["tsa-retired"], ".."+until.Format(time.RFC3339)) || !strings.HasSuffix(ends["tsa-first"], ".."+from.Format(time.RFC3339)) {
					t.Errorf("trusted_root.json's TSAs: %v", ends)
				}
				pemChain, err := p.Get("/api/v1/timestamp/certchain")
				if err != nil {
					t.Fatal(err)
				}
				if b, _ := pem.Decode(pemChain); b == nil || !bytes.Equal(b.Bytes, next[0].Raw) {
					t.Error("the TSA does not serve the rotation's chain after its start")
				}
				wantExpiry(t, p, "tsa_signing_rotation_1", next[0])
				resp := jsonTimestamp(t, p)
				ts, err := timestamp.ParseResponse(resp)
				if err != nil || len(ts.Certificates) == 0 || !bytes.Equal(ts.Certificates[0].Raw, next[0].Raw) {
					t.Errorf("the timestamp is not signed by the rotation's key (%v)", err)
				}
			}
		}},
		// A log rotation not started yet: trusted_root.json and the signing
		// config list the new shard from its start under its origin's host
		// name, where it serves its (empty) checkpoint; entries still go to
		// the first log.
		{keys: []string{"keys.logRotations[].key", "keys.logRotations[].origin", "keys.logRotations[].from"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			writePEMKey(t, filepath.Join(dir, "log-2.key"), priv)
			from := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			return fmt.Sprintf("keys:\n  logRotations:\n    - key: %s\n      origin: localhost\n      from: %s\n", filepath.Join(dir, "log-2.key"), from.Format(time.RFC3339)), func(t *testing.T, p *servertest.Process) {
				var tr trustedRootJSON
				if err := json.Unmarshal(mustGet(t, p, "/trust/trusted_root.json"), &tr); err != nil {
					t.Fatal(err)
				}
				u, _ := url.Parse(p.URL)
				shard := "http://localhost:" + u.Port()
				der, _ := x509.MarshalPKIXPublicKey(pub)
				if len(tr.Tlogs) != 2 || tr.Tlogs[0].PublicKey.ValidFor.End != from.Format(time.RFC3339) ||
					tr.Tlogs[1].BaseURL != shard || !bytes.Equal(tr.Tlogs[1].PublicKey.RawBytes, der) || tr.Tlogs[1].PublicKey.ValidFor.Start != from.Format(time.RFC3339) {
					t.Fatalf("trusted_root.json's tlogs: %+v", tr.Tlogs)
				}
				if sc := mustGet(t, p, "/trust/signing_config.json"); !strings.Contains(string(sc), `"`+shard+`"`) {
					t.Errorf("the signing config does not offer the new shard:\n%s", sc)
				}
				appendEntries(t, p, 2)
				resp, err := http.Get(shard + "/api/v2/checkpoint")
				if err != nil {
					t.Fatal(err)
				}
				cp, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.HasPrefix(string(cp), "localhost\n0\n") {
					t.Errorf("the new shard before its start serves:\n%s", cp)
				}
				if first, _ := p.Get("/api/v2/checkpoint"); !strings.HasPrefix(string(first), u.Hostname()+"\n2\n") {
					t.Errorf("the first log does not hold the entries:\n%s", first)
				}
			}
		}},

		// The CT log: its key, turning it off, and its batching.
		{keys: []string{"keys.ctLogKey"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			writePEMKey(t, filepath.Join(dir, "ct.key"), key)
			return "keys:\n  ctLogKey: " + filepath.Join(dir, "ct.key") + "\n", func(t *testing.T, p *servertest.Process) {
				tr, _ := trustFiles(t, p)
				der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
				id := sha256.Sum256(der)
				if len(tr.CTLogs) != 1 || !bytes.Equal(tr.CTLogs[0].PublicKey.RawBytes, der) || !bytes.Equal(tr.CTLogs[0].LogID.KeyID, id[:]) {
					t.Fatalf("trusted root CT logs %+v do not name the configured key", tr.CTLogs)
				}
				if got := sctLogIDs(t, certify(t, p)); len(got) != 1 || got[0] != id {
					t.Errorf("certificate SCTs from logs %x, want %x", got, id)
				}
			}
		}},
		{keys: []string{"ct.disabled"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "ct:\n  disabled: true\n", func(t *testing.T, p *servertest.Process) {
				if tr, _ := trustFiles(t, p); len(tr.CTLogs) != 0 {
					t.Errorf("trusted root lists CT logs %+v with ct.disabled", tr.CTLogs)
				}
				if got := sctLogIDs(t, certify(t, p)); len(got) != 0 {
					t.Errorf("certificate carries SCTs with ct.disabled")
				}
				if code, _ := get(t, p, "/ctlog/checkpoint"); code != http.StatusNotFound {
					t.Errorf("GET /ctlog/checkpoint: %d with ct.disabled", code)
				}
			}
		}},
		{keys: []string{"ct.batchMaxAge"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "ct:\n  batchMaxAge: 1500ms\n", func(t *testing.T, p *servertest.Process) {
				// A lone precertificate waits the whole age to be sequenced.
				start := time.Now()
				certify(t, p)
				if d := time.Since(start); d < 1200*time.Millisecond {
					t.Errorf("a lone certificate was issued after %v, before ct.batchMaxAge", d)
				}
			}
		}},
		{keys: []string{"ct.checkpointInterval"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "ct:\n  checkpointInterval: 1500ms\n", func(t *testing.T, p *servertest.Process) {
				published := func(size uint64) time.Time {
					t.Helper()
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
						if code, b := get(t, p, "/ctlog/checkpoint"); code == http.StatusOK && checkpointSize([]byte(b)) >= size {
							return time.Now()
						}
					}
					t.Fatalf("/ctlog/checkpoint never reached size %d", size)
					return time.Time{}
				}
				certify(t, p)
				t1 := published(1)
				certify(t, p)
				if d := published(2).Sub(t1); d < 1200*time.Millisecond {
					t.Errorf("the CT checkpoint was republished after %v, within the 1.5s interval", d)
				}
			}
		}},

		{keys: []string{"ca.validity"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "ca:\n  validity: 3m\n", func(t *testing.T, p *servertest.Process) {
				tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
				if err != nil {
					t.Fatal(err)
				}
				if c := mustCertify(t, p, tok); c.NotAfter.Sub(c.NotBefore) != 3*time.Minute {
					t.Errorf("certificate valid %v", c.NotAfter.Sub(c.NotBefore))
				}
			}
		}},
		// Identity tokens that live too long or were issued in the future are
		// refused, with ca.maxTokenLifetime honoured; a normal one gets a
		// certificate.
		{keys: []string{"ca.maxTokenLifetime"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			iss := newTestIssuer(t, dir)
			return iss.config("url: https://ci.example.com", "type: email") + "ca:\n  maxTokenLifetime: 1h\n", func(t *testing.T, p *servertest.Process) {
				now := time.Now()
				mint := func(iat, exp time.Time) string {
					c := emailClaims("https://ci.example.com", "alice@example.com")
					c["iat"], c["exp"] = iat.Unix(), exp.Unix()
					return iss.mint(t, c)
				}
				refused(t, p, mint(now, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)), "longer than the 1h0m0s")
				refused(t, p, mint(now, now.Add(2*time.Hour)), "ca.maxTokenLifetime")
				refused(t, p, mint(now.Add(time.Hour), now.Add(90*time.Minute)), "in the future")
				mustCertify(t, p, mint(now, now.Add(50*time.Minute)))
			}
		}},

		// The log. Sigstore verifiers derive the checkpoint origin from the
		// host of the log's URL in trusted_root.json, so a configured origin
		// names the log at that host (localhost reaches this server too),
		// and a bundle logged under it verifies in signet and sigstore-go.
		{keys: []string{"log.origin"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "log:\n  origin: localhost\n", func(t *testing.T, p *servertest.Process) {
				logURL := strings.Replace(p.URL, "127.0.0.1", "localhost", 1)
				tr, sc := trustFiles(t, p)
				if tr.Tlogs[0].BaseURL != logURL || sc.RekorURLs[0].URL != logURL || sc.CAURLs[0].URL != p.URL {
					t.Errorf("trust files: log %s (signing config %s), CA %s; want the log at %s", tr.Tlogs[0].BaseURL, sc.RekorURLs[0].URL, sc.CAURLs[0].URL, logURL)
				}
				checkOriginEndToEnd(t, p, "localhost")
			}
		}},
		// tessera publishes <data>/log/checkpoint at most once an interval;
		// GET /api/v2/checkpoint answers the newest signed head at once.
		{keys: []string{"log.checkpointInterval"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "log:\n  checkpointInterval: 1500ms\n", func(t *testing.T, p *servertest.Process) {
				published := func(size uint64) time.Time {
					t.Helper()
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
						if b, err := os.ReadFile(filepath.Join(p.DataDir, "log", "checkpoint")); err == nil && checkpointSize(b) >= size {
							return time.Now()
						}
					}
					t.Fatalf("log/checkpoint never reached size %d", size)
					return time.Time{}
				}
				appendEntries(t, p, 1)
				t1 := published(1)
				appendEntries(t, p, 1)
				if cp, err := p.Get("/api/v2/checkpoint"); err != nil || checkpointSize(cp) != 2 {
					t.Errorf("served checkpoint does not cover the acknowledged entry at once: %q %v", cp, err)
				}
				if d := published(2).Sub(t1); d < 1200*time.Millisecond {
					t.Errorf("log/checkpoint republished after %v, within the 1.5s interval", d)
				}
			}
		}},
		{keys: []string{"log.batchMaxAge"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "log:\n  batchMaxAge: 1500ms\n", func(t *testing.T, p *servertest.Process) {
				// A lone entry waits the whole age for a batch to fill.
				if d := timeAppend(t, p); d < 1200*time.Millisecond {
					t.Errorf("a lone entry was integrated after %v, before batchMaxAge", d)
				}
			}
		}},
		{keys: []string{"log.batchMaxSize"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "log:\n  batchMaxAge: 30s\n  batchMaxSize: 1\n", func(t *testing.T, p *servertest.Process) {
				// A full batch of one is integrated without waiting the 30s age.
				if d := timeAppend(t, p); d > 10*time.Second {
					t.Errorf("an entry filling the batch waited %v", d)
				}
			}
		}},
		{keys: []string{"log.maxRequestBytes"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "log:\n  maxRequestBytes: 1024\n", func(t *testing.T, p *servertest.Process) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				body := hashedRekordRequest(key)
				if status, msg := post(t, p, "/api/v2/log/entries", body); status != http.StatusCreated {
					t.Fatalf("a %d-byte entry: %d %s", len(body), status, msg)
				}
				padded := append(bytes.Repeat([]byte(" "), 1100), hashedRekordRequest(key)...)
				if status, msg := post(t, p, "/api/v2/log/entries", padded); status != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "1024") {
					t.Errorf("a %d-byte request: %d %s, want 413 naming the limit", len(padded), status, msg)
				}
			}
		}},

		// A witness nobody runs: no checkpoint is cosigned, so an entry is
		// refused after the wait that witnessTimeout sets (2×300ms+1s).
		{keys: []string{"log.witnessPolicy", "log.witnessTimeout"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			_, vkey, err := note.GenerateKey(rand.Reader, "witness.example")
			if err != nil {
				t.Fatal(err)
			}
			cosig, err := fnote.VKeyToCosignatureV1(vkey)
			if err != nil {
				t.Fatal(err)
			}
			policy := filepath.Join(dir, "witnesses.txt")
			if err := os.WriteFile(policy, fmt.Appendf(nil, "witness w %s http://127.0.0.1:%d\nquorum w\n", cosig, servertest.FreePort(t)), 0o644); err != nil {
				t.Fatal(err)
			}
			return "log:\n  witnessPolicy: " + policy + "\n  witnessTimeout: 300ms\n", func(t *testing.T, p *servertest.Process) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				status, msg := post(t, p, "/api/v2/log/entries", hashedRekordRequest(key))
				if status != http.StatusServiceUnavailable || !strings.Contains(msg, "witnesses") || !strings.Contains(msg, "waited 1.6s") {
					t.Errorf("an entry with the only witness unreachable: %d %s, want 503 naming the witnesses after 1.6s", status, msg)
				}
			}
		}},
		// Timestamps are logged by default (the response carries the
		// entry); logTimestamps: false answers plain ones.
		{keys: []string{"tsa.logTimestamps"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "tsa:\n  logTimestamps: false\n", func(t *testing.T, p *servertest.Process) {
				def := servertest.Start(t, t.TempDir(), "--dev-oidc")
				for _, c := range []struct {
					p      *servertest.Process
					logged bool
				}{{def, true}, {p, false}} {
					resp := jsonTimestamp(t, c.p)
					_, err := timelog.Extract(resp)
					if logged := err == nil; logged != c.logged {
						t.Errorf("server %s: timestamp logged %v (%v), want %v", c.p.URL, logged, err, c.logged)
					}
				}
			}
		}},
		// A key ceremony's repository is served: its root, and a timestamp
		// the online key signed (the zero-config key would sign it otherwise).
		{keys: []string{"tuf.dir", "tuf.onlineKey"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			pub, onlineKey, root, onlineID := publishedTUF(t, dir)
			return fmt.Sprintf("tuf:\n  dir: %s\n  onlineKey: %s\n", pub, onlineKey), func(t *testing.T, p *servertest.Process) {
				if got, err := p.Get("/tuf/1.root.json"); err != nil || !bytes.Equal(got, root) {
					t.Errorf("/tuf/1.root.json is not the ceremony's root (%v)", err)
				}
				if ids := timestampSigners(t, p); len(ids) != 1 || ids[0] != onlineID {
					t.Errorf("timestamp.json signed by %v, want the online key %s", ids, onlineID)
				}
			}
		}},
		// The zero-config repository signs with the key tuf.key names, and
		// no keys/tuf.key is made in the data directory.
		{keys: []string{"tuf.key"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			priv, _, err := tuf.GenerateKey("ed25519", nil)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "tuf-zero.key")
			if err := os.WriteFile(path, priv, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := tuf.LoadPublicKey(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := k.ID()
			return fmt.Sprintf("tuf:\n  key: %s\n", path), func(t *testing.T, p *servertest.Process) {
				if ids := timestampSigners(t, p); len(ids) != 1 || ids[0] != id {
					t.Errorf("timestamp.json signed by %v, want tuf.key %s", ids, id)
				}
				if _, err := os.Stat(filepath.Join(p.DataDir, "keys", "tuf.key")); err == nil {
					t.Error("keys/tuf.key was made although tuf.key names the key")
				}
			}
		}},
		// Limits: a request beyond the bucket is answered 429 with
		// Retry-After, before any other work; other clients and identities
		// keep their own buckets.
		{keys: []string{"limits.logEntries.perIP.rate", "limits.logEntries.perIP.burst", "limits.trustedProxies"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "limits:\n  trustedProxies: [127.0.0.1]\n  logEntries:\n    perIP: {rate: 0.01, burst: 1}\n", func(t *testing.T, p *servertest.Process) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				from := func(client string) (int, http.Header, string) {
					req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v2/log/entries", bytes.NewReader(hashedRekordRequest(key)))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Forwarded-For", client)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, resp.Header, string(b)
				}
				if code, _, msg := from("198.51.100.1"); code != http.StatusCreated {
					t.Fatalf("first entry from a client: %d %s", code, msg)
				}
				code, h, msg := from("198.51.100.1")
				if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(msg, "too many log entries from this address") {
					t.Errorf("second entry at once from the same client: %d (Retry-After %q) %s, want 429", code, h.Get("Retry-After"), msg)
				}
				// Behind the trusted proxy, another client has its own bucket.
				if code, _, msg := from("198.51.100.2"); code != http.StatusCreated && code != http.StatusConflict {
					t.Errorf("an entry from another client behind the proxy: %d %s", code, msg)
				}
			}
		}},
		{keys: []string{"limits.logEntries.perIdentity.rate", "limits.logEntries.perIdentity.burst"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "limits:\n  logEntries:\n    perIdentity: {rate: 0.01, burst: 1}\n", func(t *testing.T, p *servertest.Process) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if status, msg := post(t, p, "/api/v2/log/entries", hashedRekordRequest(key)); status != http.StatusCreated {
					t.Fatalf("first entry of a key: %d %s", status, msg)
				}
				if status, msg := post(t, p, "/api/v2/log/entries", hashedRekordRequest(key)); status != http.StatusTooManyRequests || !strings.Contains(msg, "too many log entries for this signer") {
					t.Errorf("second entry of the same key at once: %d %s, want 429", status, msg)
				}
				other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if status, msg := post(t, p, "/api/v2/log/entries", hashedRekordRequest(other)); status != http.StatusCreated {
					t.Errorf("an entry of another key: %d %s", status, msg)
				}
			}
		}},
		{keys: []string{"limits.certificates.perIP.rate", "limits.certificates.perIP.burst"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "limits:\n  certificates:\n    perIP: {rate: 0.01, burst: 1}\n", func(t *testing.T, p *servertest.Process) {
				certify(t, p)
				status, msg := post(t, p, "/api/v2/signingCert", []byte(`{}`))
				if status != http.StatusTooManyRequests || !strings.Contains(msg, "too many certificate requests from this address") {
					t.Errorf("second certificate request at once: %d %s, want 429", status, msg)
				}
			}
		}},
		{keys: []string{"limits.certificates.perIdentity.rate", "limits.certificates.perIdentity.burst"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "limits:\n  certificates:\n    perIdentity: {rate: 0.01, burst: 1}\n", func(t *testing.T, p *servertest.Process) {
				noRetry := func(repo string) error {
					tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {repo}})
					if err != nil {
						t.Fatal(err)
					}
					ca, err := fulcio.New(p.URL, &http.Client{Timeout: 10 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					s, err := coresigner.Ephemeral()
					if err != nil {
						t.Fatal(err)
					}
					_, err = ca.CreateSigningCertificate(context.Background(), tok, s)
					return err
				}
				if err := noRetry("acme/app"); err != nil {
					t.Fatal(err)
				}
				if err := noRetry("acme/app"); err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "too many certificate requests for https://github.com/acme/app/") {
					t.Errorf("second certificate for the same identity at once: %v, want 429 naming it", err)
				}
				if err := noRetry("acme/other"); err != nil {
					t.Errorf("another identity: %v", err)
				}
			}
		}},
		{keys: []string{"attestations.maxEnvelopeBytes"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "attestations:\n  maxEnvelopeBytes: 8192\n", func(t *testing.T, p *servertest.Process) {
				storeAttestation(t, p, strings.Repeat("ab", 32))
				_, err := attest(p, strings.Repeat("ab", 32), []byte(`{"blob":"`+strings.Repeat("z", 16<<10)+`"}`))
				if err == nil || !strings.Contains(err.Error(), "8192") {
					t.Errorf("a 16 KiB attestation: %v, want it refused naming the 8192-byte limit", err)
				}
			}
		}},
		// Large attestation submissions cannot together exhaust memory: while
		// one body holds attestations.maxInflightBytes, another large one is
		// told to retry (503, Retry-After) instead of being read; small ones
		// still fit, and once the first is gone the large one is read.
		{keys: []string{"attestations.maxInflightBytes"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "attestations:\n  maxEnvelopeBytes: 1000000\n  maxInflightBytes: 1300000\n", func(t *testing.T, p *servertest.Process) {
				addr := mustURL(t, p.URL).Host
				// A submission that declares 1,000,000 bytes and sends them slowly.
				held, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(held, "POST /api/v2/attestations HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{", addr)
				time.Sleep(300 * time.Millisecond)

				submit := func(n int) (int, http.Header) {
					body := `{"envelope":{"payload":"` + strings.Repeat("A", n) + `"}}`
					resp, err := http.Post(p.URL+"/api/v2/attestations", "application/json", strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					return resp.StatusCode, resp.Header
				}
				if status, h := submit(600_000); status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
					t.Fatalf("large submission while the budget is held: %d (Retry-After %q), want 503 with Retry-After", status, h.Get("Retry-After"))
				}
				if status, _ := submit(1000); status == http.StatusServiceUnavailable {
					t.Fatal("a small submission was refused while it fits the budget")
				}
				held.Close()
				time.Sleep(300 * time.Millisecond)
				if status, _ := submit(600_000); status == http.StatusServiceUnavailable {
					t.Fatal("large submission refused after the budget was freed")
				}
			}
		}},

		// A client trickling a body is cut off at http.readTimeout.
		{keys: []string{"http.readTimeout"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "http:\n  readTimeout: 2s\n", func(t *testing.T, p *servertest.Process) {
				start := time.Now()
				c := trickle(t, p)
				closed := make(chan time.Duration, 1)
				go func() {
					buf := make([]byte, 512)
					for {
						if _, err := c.Read(buf); err != nil {
							closed <- time.Since(start)
							return
						}
					}
				}()
				select {
				case d := <-closed:
					if d < 1500*time.Millisecond {
						t.Errorf("connection closed after %v, before the 2s read timeout", d)
					}
				case <-time.After(8 * time.Second):
					t.Fatal("a trickled body held its connection past the read timeout")
				}
			}
		}},
		// Headers sent slowly are cut off at http.readHeaderTimeout, well
		// before the whole request's readTimeout.
		{keys: []string{"http.readHeaderTimeout"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "http:\n  readHeaderTimeout: 1s\n", func(t *testing.T, p *servertest.Process) {
				addr := mustURL(t, p.URL).Host
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				cut := func() float64 {
					return scrapeOnce(t, p)["signet_http_connections_without_request_total"].GetMetric()[0].GetCounter().GetValue()
				}
				before := cut()
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", addr) // no blank line
				if d := closedAfter(t, c, 8*time.Second); d < 800*time.Millisecond || d > 4*time.Second {
					t.Errorf("slow headers cut off after %v, want about the 1s readHeaderTimeout (readTimeout is 20s)", d)
				}
				time.Sleep(100 * time.Millisecond) // the server's side of the close
				if after := cut(); after < before+1 {
					t.Errorf("signet_http_connections_without_request_total %v after a connection cut at the header timeout, was %v", after, before)
				}
			}
		}},
		// A kept-alive connection with no request is closed at
		// http.idleTimeout.
		{keys: []string{"http.idleTimeout"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "http:\n  idleTimeout: 1s\n", func(t *testing.T, p *servertest.Process) {
				addr := mustURL(t, p.URL).Host
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
				if d := closedAfter(t, c, 8*time.Second); d < 800*time.Millisecond || d > 4*time.Second {
					t.Errorf("an idle kept-alive connection closed after %v, want about the 1s idleTimeout", d)
				}
			}
		}},
		{keys: []string{"ca.maxRequestBytes"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "ca:\n  maxRequestBytes: 4096\n", func(t *testing.T, p *servertest.Process) {
				body := []byte(`{"credentials":{"oidcIdentityToken":"` + strings.Repeat("a", 4100) + `"}}`)
				if status, msg := post(t, p, "/api/v2/signingCert", body); status != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "4096") {
					t.Errorf("a %d-byte signing request: %d %s, want 413 naming the limit", len(body), status, msg)
				}
				tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
				if err != nil {
					t.Fatal(err)
				}
				mustCertify(t, p, tok) // a real request still fits
			}
		}},
		{keys: []string{"tsa.maxRequestBytes"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "tsa:\n  maxRequestBytes: 512\n", func(t *testing.T, p *servertest.Process) {
				resp, err := http.Post(p.URL+"/api/v1/timestamp", "application/timestamp-query", bytes.NewReader(make([]byte, 600)))
				if err != nil {
					t.Fatal(err)
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "512") {
					t.Errorf("a 600-byte timestamp request: %s %s, want 413 naming the limit", resp.Status, msg)
				}
				jsonTimestamp(t, p) // a real request still fits
			}
		}},
		// No more than http.maxConnections are served at once; the next waits
		// until one closes.
		{keys: []string{"http.maxConnections"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "http:\n  maxConnections: 4\n", func(t *testing.T, p *servertest.Process) {
				addr := mustURL(t, p.URL).Host
				// Four held connections (a header sent slowly keeps each open) fill the limit.
				var held []net.Conn
				for i := range 4 {
					if i == 3 {
						// Three held and the scrape's own: the gauges show the
						// limit reached.
						// (Polled: on a loaded machine the server may not have
						// accepted the held ones yet.)
						fams := scrapeOnce(t, p)
						for deadline := time.Now().Add(5 * time.Second); fams["signet_http_connections_open"].GetMetric()[0].GetGauge().GetValue() < 4 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
							fams = scrapeOnce(t, p)
						}
						if open := fams["signet_http_connections_open"].GetMetric()[0].GetGauge().GetValue(); open < 4 {
							t.Errorf("signet_http_connections_open %v with three connections held and one scraping", open)
						}
						if limit := fams["signet_http_max_connections"].GetMetric()[0].GetGauge().GetValue(); limit != 4 {
							t.Errorf("signet_http_max_connections %v, want 4", limit)
						}
					}
					h, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(h, "GET /healthz HTTP/1.1\r\nHost: %s\r\n", addr) // no blank line: the request is incomplete
					held = append(held, h)
				}
				time.Sleep(200 * time.Millisecond)
				httpc := &http.Client{Timeout: 700 * time.Millisecond}
				if resp, err := httpc.Get(p.URL + "/healthz"); err == nil {
					resp.Body.Close()
					t.Fatal("a fifth connection was served while four were held")
				}
				for _, h := range held {
					h.Close()
				}
				httpc.Timeout = 5 * time.Second
				resp, err := httpc.Get(p.URL + "/healthz")
				if err != nil {
					t.Fatalf("after the held connections closed: %v", err)
				}
				resp.Body.Close()
			}
		}},
		// SIGTERM waits for requests in flight at most shutdownTimeout.
		// The distributed storage: the log's objects land under the
		// prefix in the bucket of the store at the endpoint (the SDK is
		// given no endpoint of its own), its record and the attestations
		// in the database; without pathStyle the store is not reached and
		// the server does not start.
		{keys: []string{"storage.driver", "storage.database.dsn", "storage.ctDatabase.dsn", "storage.objects.bucket", "storage.objects.prefix", "storage.objects.endpoint", "storage.objects.pathStyle"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			db, objects := distributedBackends(t)
			keys := sharedKeys(t)
			copyDir(t, keys, filepath.Join(dir, "data", "keys"))
			iss := newTestIssuer(t, dir)
			// By name: the AWS SDK addresses a bucket on an IP address
			// in the path whatever pathStyle says.
			endpoint := strings.Replace(objects.Endpoint(), "127.0.0.1", "localhost", 1)
			storageYAML := func(pathStyle bool) string {
				return fmt.Sprintf("%sstorage:\n  driver: distributed\n  database:\n    dsn: %q\n  ctDatabase:\n    dsn: %q\n  objects:\n    bucket: signet\n    prefix: here/\n    endpoint: %s\n    pathStyle: %v\n",
					iss.config("url: https://ci.example.com", "type: email"), db.DSN("signet"), db.DSN("signet_ct"), endpoint, pathStyle)
			}
			return storageYAML(true), func(t *testing.T, p *servertest.Process) {
				appendEntries(t, p, 3)
				ctx := context.Background()
				deadline := time.Now().Add(20 * time.Second)
				for {
					out, err := objects.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("signet"), Key: aws.String("here/tile/0/000.p/3")})
					if err == nil {
						out.Body.Close()
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no tile of 3 entries under s3://signet/here/: %v", err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				sqlDB, err := sql.Open("mysql", db.DSN("signet"))
				if err != nil {
					t.Fatal(err)
				}
				defer sqlDB.Close()
				var n int
				if err := sqlDB.QueryRow("SELECT COUNT(*) FROM SignetSignedHead WHERE note IS NOT NULL").Scan(&n); err != nil || n != 1 {
					t.Fatalf("the log's signed-head record in the database: %d rows, %v", n, err)
				}
				res, err := attestAs(p.URL, iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com")), strings.Repeat("ab", 32))
				if err != nil {
					t.Fatal(err)
				}
				if err := sqlDB.QueryRow("SELECT COUNT(*) FROM SignetAttestationRecords").Scan(&n); err != nil || n != 1 {
					t.Fatalf("attestation %s in the database: %d rows, %v", res.AttestationID, n, err)
				}
				// The attestation's certificate was logged in the CT log,
				// whose record is in storage.ctDatabase and whose objects
				// are under the prefix's ctlog/.
				if ids := sctLogIDs(t, res.Certificate); len(ids) != 1 {
					t.Fatalf("the certificate carries %d SCTs, want the CT log's", len(ids))
				}
				ctDB, err := sql.Open("mysql", db.DSN("signet_ct"))
				if err != nil {
					t.Fatal(err)
				}
				defer ctDB.Close()
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					out, err := objects.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("signet"), Key: aws.String("here/ctlog/tile/data/000.p/1")})
					if err == nil {
						out.Body.Close()
						if err := ctDB.QueryRow("SELECT COUNT(*) FROM SignetSignedHead WHERE note IS NOT NULL").Scan(&n); err != nil || n != 1 {
							t.Fatalf("the CT log's signed-head record in storage.ctDatabase: %d rows, %v", n, err)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no CT data tile of 1 entry under s3://signet/here/ctlog/: %v", err)
					}
				}
				other := filepath.Join(t.TempDir(), "server.yaml")
				if err := os.WriteFile(other, []byte(storageYAML(false)), 0o600); err != nil {
					t.Fatal(err)
				}
				data := t.TempDir()
				copyDir(t, keys, filepath.Join(data, "keys"))
				if q, err := servertest.StartErr(servertest.Binary(t), data, "--config", other); err == nil {
					q.Kill()
					t.Fatal("started with pathStyle: false against a store that needs path-style addressing")
				} else if !strings.Contains(err.Error(), "reading the published checkpoint s3://signet/here/") {
					t.Fatalf("without pathStyle: %v", err)
				}
			}
		}},
		// The DSN from a file, not the config.
		{keys: []string{"storage.database.dsnFile", "storage.ctDatabase.dsnFile", "storage.integrationLoops"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			db, objects := distributedBackends(t)
			copyDir(t, sharedKeys(t), filepath.Join(dir, "data", "keys"))
			iss := newTestIssuer(t, dir)
			dsnFile, ctDSNFile := filepath.Join(dir, "dsn"), filepath.Join(dir, "ct-dsn")
			if err := os.WriteFile(dsnFile, []byte(db.DSN("signet")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ctDSNFile, []byte(db.DSN("signet_ct")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%sstorage:\n  driver: distributed\n  integrationLoops: 2\n  database:\n    dsnFile: %s\n  ctDatabase:\n    dsnFile: %s\n  objects:\n    bucket: signet\n    endpoint: %s\n    pathStyle: true\n",
					iss.config("url: https://ci.example.com", "type: email"), dsnFile, ctDSNFile, objects.Endpoint()), func(t *testing.T, p *servertest.Process) {
					appendEntries(t, p, 1)
					sqlDB, err := sql.Open("mysql", db.DSN("signet"))
					if err != nil {
						t.Fatal(err)
					}
					defer sqlDB.Close()
					var n int
					if err := sqlDB.QueryRow("SELECT COUNT(*) FROM SignetSignedHead WHERE note IS NOT NULL").Scan(&n); err != nil || n != 1 {
						t.Fatalf("the log's signed-head record in the database of the DSN file: %d rows, %v", n, err)
					}
					// Two integration loops, as configured.
					for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
						_, metrics := get(t, p, "/metrics")
						if strings.Contains(metrics, "\nsignet_tlog_integration_loops{origin=\"127.0.0.1\"} 2\n") {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the server does not report 2 integration loops:\n%s", metrics)
						}
					}
					// The CT log is on the database of its DSN file.
					mustCertify(t, p, iss.mint(t, emailClaims("https://ci.example.com", "bob@example.com")))
					ctDB, err := sql.Open("mysql", db.DSN("signet_ct"))
					if err != nil {
						t.Fatal(err)
					}
					defer ctDB.Close()
					if err := ctDB.QueryRow("SELECT next FROM SeqCoord WHERE id = 0").Scan(&n); err != nil || n < 1 {
						t.Fatalf("the CT log's entries in the database of storage.ctDatabase.dsnFile: next index %d, %v", n, err)
					}
				}
		}},
		{keys: []string{"shutdownTimeout"}, args: []string{"--dev-oidc"}, setup: func(t *testing.T, dir string) (string, func(*testing.T, *servertest.Process)) {
			return "shutdownTimeout: 1s\nhttp:\n  readTimeout: 60s\n", func(t *testing.T, p *servertest.Process) {
				c := trickle(t, p)
				defer c.Close()
				time.Sleep(300 * time.Millisecond)
				start := time.Now()
				err := p.Stop(20 * time.Second)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the server took %v to stop with a request in flight; shutdownTimeout is 1s", d)
				}
				if err == nil || !strings.Contains(p.Stderr(), "requests still in flight after shutdownTimeout (1s) were cut off") {
					t.Errorf("exit %v; stderr does not say the request was cut off:\n%s", err, p.Stderr())
				}
			}
		}},
	}
}

// A config file is read strictly: an unknown key, a key in the wrong
// section, a second YAML document or an origin no verifier accepts stops
// the server at start with a message naming it.
func TestConfigRefusedAtStart(t *testing.T) {
	bin := servertest.Binary(t)
	for _, c := range []struct {
		yaml string
		says []string
	}{
		{"devOIDC: true\nlogg:\n  origin: x\n", []string{"line 2: unknown key logg", "the top level takes addr, url, data"}},
		{"devOIDC: true\nlog:\n  orign: x\n", []string{"line 3: unknown key log.orign", "log takes origin, checkpointInterval"}},
		{"devOIDC: true\noidcIssuers:\n  - url: https://ci.example.com\n    typ: email\n", []string{"line 4: unknown key oidcIssuers[0].typ", "type"}},
		{"devOIDC: true\nhttp:\n  shutdownTimeout: 1s\n", []string{"unknown key http.shutdownTimeout", "http takes readTimeout, readHeaderTimeout, idleTimeout, maxConnections"}},
		{"devOIDC: true\nlog: fast\n", []string{"line 2: log must be a mapping of origin"}},
		{"devOIDC: true\n---\nlogg: 1\n", []string{"more than one YAML document", "line 2"}},
		{"devOIDC: true\nlog:\n  origin: example.com/log\n", []string{`log.origin "example.com/log" is not a host name`, "sigstore-go"}},
		{"devOIDC: true\nlog:\n  origin: example.com:8443\n", []string{`log.origin "example.com:8443" is not a host name`}},
	} {
		cfg := filepath.Join(t.TempDir(), "server.yaml")
		if err := os.WriteFile(cfg, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := servertest.StartErr(bin, t.TempDir(), "--config", cfg)
		for _, s := range c.says {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("config %q: %v, want an error saying %q", c.yaml, err, s)
			}
		}
	}
}

// checkOriginEndToEnd signs a blob against p with signet's CLI and with
// sigstore-go and verifies both bundles with `signet verify-blob` and with
// sigstore-go, whose checkpoints carry origin.
func checkOriginEndToEnd(t *testing.T, p *servertest.Process, origin string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	artifact := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(artifact, []byte("release\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const san = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	issuer := p.URL + "/dev/oidc"
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	signet := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(servertest.Binary(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("signet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	signet("sign-blob", artifact, "--server", p.URL, "--identity-token", tok, "--bundle", artifact+".signet.json")
	pb, tr, trJSON := sigstoreGoSign(t, p, tok, []byte("release\n"))
	sgJSON, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(artifact+".sigstore-go.json", sgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(root, trJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := verify.NewVerifier(tr, verify.WithSignedTimestamps(1), verify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	id, err := verify.NewShortCertificateIdentity(issuer, "", san, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{artifact + ".signet.json", artifact + ".sigstore-go.json"} {
		raw, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		var sb bundle.Bundle
		if err := sb.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		if got := checkpointOrigin(t, &sb); got != origin {
			t.Errorf("%s: checkpoint origin %q, want %q", filepath.Base(b), got, origin)
		}
		if _, err := v.Verify(&sb, verify.NewPolicy(verify.WithArtifact(bytes.NewReader([]byte("release\n"))), verify.WithCertificateIdentity(id))); err != nil {
			t.Errorf("sigstore-go does not verify %s: %v", filepath.Base(b), err)
		}
		signet("verify-blob", artifact, "--bundle", b, "--trusted-root", root, "--certificate-identity", san, "--certificate-oidc-issuer", issuer)
	}
}

// Helpers for the cases above.

// trustedRootJSON and signingConfigJSON are the parts of the trust files
// the cases read.
type trustedRootJSON struct {
	CTLogs []struct {
		BaseURL   string `json:"baseUrl"`
		PublicKey struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"publicKey"`
		LogID struct {
			KeyID []byte `json:"keyId"`
		} `json:"logId"`
	} `json:"ctlogs"`
	Tlogs []struct {
		BaseURL   string `json:"baseUrl"`
		Operator  string `json:"operator"`
		PublicKey struct {
			RawBytes []byte `json:"rawBytes"`
			ValidFor struct {
				Start, End string
			} `json:"validFor"`
		} `json:"publicKey"`
	} `json:"tlogs"`
	CAs  []authorityJSON `json:"certificateAuthorities"`
	TSAs []authorityJSON `json:"timestampAuthorities"`
}

type authorityJSON struct {
	URI      string `json:"uri"`
	Operator string `json:"operator"`
	ValidFor struct {
		Start, End string
	} `json:"validFor"`
	CertChain struct {
		Certificates []struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"certificates"`
	} `json:"certChain"`
}

// periods maps each authority's certificate common name to its validity
// period in trusted_root.json, "start..end".
func periods(t *testing.T, as []authorityJSON) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range as {
		c, err := x509.ParseCertificate(a.CertChain.Certificates[0].RawBytes)
		if err != nil {
			t.Fatal(err)
		}
		out[c.Subject.CommonName] = a.ValidFor.Start + ".." + a.ValidFor.End
	}
	return out
}

type serviceJSON struct {
	URL      string `json:"url"`
	Operator string `json:"operator"`
}

type signingConfigJSON struct {
	CAURLs    []serviceJSON `json:"caUrls"`
	RekorURLs []serviceJSON `json:"rekorTlogUrls"`
	TSAURLs   []serviceJSON `json:"tsaUrls"`
}

func trustFiles(t *testing.T, p *servertest.Process) (trustedRootJSON, signingConfigJSON) {
	t.Helper()
	var tr trustedRootJSON
	var sc signingConfigJSON
	for path, v := range map[string]any{"/trust/trusted_root.json": &tr, "/trust/signing_config.json": &sc} {
		b, err := p.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if len(tr.Tlogs) != 1 || len(tr.CAs) < 1 || len(tr.TSAs) < 1 || len(sc.CAURLs) != 1 || len(sc.RekorURLs) != 1 || len(sc.TSAURLs) != 1 {
		t.Fatalf("trust files: %+v %+v", tr, sc)
	}
	return tr, sc
}

// caChain is the CA chain in the server's trusted root.
func caChain(t *testing.T, p *servertest.Process) []*x509.Certificate {
	t.Helper()
	tr, _ := trustFiles(t, p)
	var out []*x509.Certificate
	for _, c := range tr.CAs[0].CertChain.Certificates {
		cert, err := x509.ParseCertificate(c.RawBytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}

// testIssuer is an OIDC issuer known to the server by a JWKS file.
type testIssuer struct {
	key  *ecdsa.PrivateKey
	jwks string
}

func newTestIssuer(t testing.TB, dir string) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: key, jwks: path}
}

// config is an oidcIssuers section with one entry of fields (and the
// issuer's jwksFile); entry adds another.
func (i *testIssuer) config(fields ...string) string { return "oidcIssuers:\n" + i.entry(fields...) }

func (i *testIssuer) entry(fields ...string) string {
	return "  - " + strings.Join(append(fields, "jwksFile: "+i.jwks), "\n    ") + "\n"
}

// mint signs claims, filling aud, iat and exp unless given.
func (i *testIssuer) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	for k, v := range map[string]any{"aud": "sigstore", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()} {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func emailClaims(iss, email string) map[string]any {
	return map[string]any{"iss": iss, "sub": email, "email": email, "email_verified": true}
}

func subClaims(iss, sub string) map[string]any { return map[string]any{"iss": iss, "sub": sub} }

func githubClaims(iss string) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "repo:acme/app:ref:refs/heads/main",
		"job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main", "job_workflow_sha": strings.Repeat("1", 40),
		"event_name": "push", "sha": strings.Repeat("2", 40), "workflow": "release", "repository": "acme/app", "ref": "refs/heads/main",
		"repository_id": "1", "repository_owner": "acme", "repository_owner_id": "2",
		"workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main", "workflow_sha": strings.Repeat("1", 40),
		"run_id": "3", "run_attempt": "1", "repository_visibility": "private", "runner_environment": "self-hosted",
	}
}

func requestCert(p *servertest.Process, token string) (*x509.Certificate, error) {
	ca, err := fulcio.New(p.URL, nil)
	if err != nil {
		return nil, err
	}
	s, err := coresigner.Ephemeral()
	if err != nil {
		return nil, err
	}
	c, err := ca.CreateSigningCertificate(context.Background(), token, s)
	if err != nil {
		return nil, err
	}
	return c.Leaf, nil
}

// mustCertify gets a certificate for token or fails.
// certify gets a certificate for a development GitHub token.
func certify(t *testing.T, p *servertest.Process) *x509.Certificate {
	t.Helper()
	tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	return mustCertify(t, p, tok)
}

// sctLogIDs lists the log IDs of the SCTs embedded in c.
func sctLogIDs(t *testing.T, c *x509.Certificate) [][32]byte {
	t.Helper()
	cc, err := ctx509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	var ids [][32]byte
	for _, raw := range cc.SCTList.SCTList {
		var sct ct.SignedCertificateTimestamp
		if _, err := cttls.Unmarshal(raw.Val, &sct); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sct.LogID.KeyID)
	}
	return ids
}

func mustCertify(t *testing.T, p *servertest.Process, token string) *x509.Certificate {
	t.Helper()
	c, err := requestCert(p, token)
	if err != nil {
		t.Fatalf("token refused: %v", err)
	}
	return c
}

// wantURI checks that c certifies the URI want and nothing else.
func wantURI(t *testing.T, c *x509.Certificate, want string) {
	t.Helper()
	if len(c.URIs) != 1 || c.URIs[0].String() != want || len(c.EmailAddresses) != 0 {
		t.Errorf("certificate SANs %v %v, want the URI %s", c.URIs, c.EmailAddresses, want)
	}
}

// refused checks that the CA refuses token, saying says.
func refused(t *testing.T, p *servertest.Process, token, says string) {
	t.Helper()
	if _, err := requestCert(p, token); err == nil || !strings.Contains(err.Error(), says) {
		t.Errorf("token: err %v, want a refusal saying %q", err, says)
	}
}

// writeChain writes <name>.key and <name>-chain.pem: an issuing certificate
// (a CA for code signing, or a timestamping leaf) and its root.
func writeChain(t *testing.T, dir, name string, eku x509.ExtKeyUsage) (crypto.Signer, []*x509.Certificate) {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now().Add(-time.Hour)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"Operator"}, CommonName: name + " root"},
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"Operator"}, CommonName: name},
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), BasicConstraintsValid: true}
	if eku == x509.ExtKeyUsageTimeStamping {
		// RFC 3161: the extended key usage is critical and timeStamping only.
		ekuDER, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: ekuDER}}
	} else {
		tmpl.KeyUsage, tmpl.IsCA, tmpl.ExtKeyUsage = x509.KeyUsageCertSign, true, []x509.ExtKeyUsage{eku}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	writePEMKey(t, filepath.Join(dir, name+".key"), key)
	chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	if err := os.WriteFile(filepath.Join(dir, name+"-chain.pem"), chainPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return key, []*x509.Certificate{cert, root}
}

func writePEMKey(t *testing.T, path string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// post sends body to path as JSON and returns the status and the answer.
func post(t *testing.T, p *servertest.Process, path string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(p.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// timeAppend logs one entry and returns how long the acknowledgement took.
func timeAppend(t *testing.T, p *servertest.Process) time.Duration {
	t.Helper()
	start := time.Now()
	appendEntries(t, p, 1)
	return time.Since(start)
}

// trickle opens a connection that sends a log entry's headers, promising
// 1,000 bytes, then one byte every 500 ms until the server closes it.
func trickle(t *testing.T, p *servertest.Process) net.Conn {
	t.Helper()
	addr := mustURL(t, p.URL).Host
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /api/v2/log/entries HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", addr)
	go func() {
		for {
			if _, err := c.Write([]byte("{")); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	return c
}

// checkpointSize is the tree size line of a checkpoint.
func checkpointSize(cp []byte) uint64 {
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 2 {
		return 0
	}
	var n uint64
	fmt.Sscan(lines[1], &n)
	return n
}

// checkpointOrigin is the origin of the checkpoint in a bundle's log entry.
func checkpointOrigin(t *testing.T, b *bundle.Bundle) string {
	t.Helper()
	entries := b.GetVerificationMaterial().GetTlogEntries()
	if len(entries) != 1 {
		t.Fatalf("%d log entries", len(entries))
	}
	origin, _, _ := strings.Cut(entries[0].GetInclusionProof().GetCheckpoint().GetEnvelope(), "\n")
	return origin
}

// documentedConfigKeys are the keys of the example configuration file in
// docs/server.md, as dotted paths (oidcIssuers[].url for a list's fields).
// publishedTUF runs a one-key ceremony in dir and publishes it: the
// published directory, the online key file, 1.root.json and the online
// key's ID.
func publishedTUF(t *testing.T, dir string) (pub, onlineKey string, root []byte, onlineID string) {
	t.Helper()
	key := func(name string) (string, *metadata.Key, signature.Signer) {
		priv, _, err := tuf.GenerateKey("ed25519", nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := tuf.LoadPublicKey(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := tuf.LoadSigner(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return path, k, s
	}
	_, rootKey, rootSigner := key("root.key")
	onlineKey, online, _ := key("online.key")
	c := &tuf.Ceremony{Dir: filepath.Join(dir, "ceremony")}
	if _, err := c.Init(tuf.RootChange{Expires: time.Now().Add(time.Hour), Roles: map[string]*tuf.RoleKeys{
		metadata.ROOT: {Keys: []*metadata.Key{rootKey}, Threshold: 1}, metadata.TARGETS: {Keys: []*metadata.Key{rootKey}, Threshold: 1},
		metadata.TIMESTAMP: {Keys: []*metadata.Key{online}, Threshold: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Targets(map[string][]byte{tuf.TrustedRootTarget: []byte("{}\n")}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS} {
		if _, err := c.Sign(role, rootSigner); err != nil {
			t.Fatal(err)
		}
	}
	pub = filepath.Join(dir, "published")
	if _, err := c.Publish(pub); err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(pub, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	onlineID, _ = online.ID()
	return pub, onlineKey, root, onlineID
}

// timestampSigners are the key IDs of the signatures on the served
// /tuf/timestamp.json.
func timestampSigners(t *testing.T, p *servertest.Process) []string {
	t.Helper()
	raw, err := p.Get("/tuf/timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	var ts struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &ts); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range ts.Signatures {
		ids = append(ids, s.KeyID)
	}
	return ids
}

func documentedConfigKeys(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "server.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Configuration file.*?```yaml\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatal("docs/server.md has no yaml block under ## Configuration file")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(m[1], &doc); err != nil {
		t.Fatalf("the documented config is not YAML: %v", err)
	}
	keys := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(n.Content[0], path)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				v := n.Content[i+1]
				scalars := v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.ScalarNode
				if (v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode) && !scalars {
					walk(v, k)
				} else {
					keys[k] = true // a value, or a list of values
				}
			}
		case yaml.SequenceNode:
			for _, e := range n.Content {
				walk(e, path+"[]")
			}
		}
	}
	walk(&doc, "")
	// The documented config must itself load.
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, m[1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LoadConfig(cfg); err != nil {
		t.Errorf("the config docs/server.md shows does not load: %v", err)
	}
	var out []string
	for k := range keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// configKeys are the YAML keys of a config type, as dotted paths.
func configKeys(t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if path != "" {
			name = path + "." + name
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			out = append(out, configKeys(ft, name)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, configKeys(ft.Elem(), name+"[]")...)
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// get fetches path and returns the status and body.
func get(t *testing.T, p *servertest.Process, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// jsonTimestamp asks the server's TSA for a timestamp (the JSON request
// form) and returns the DER response.
func jsonTimestamp(t *testing.T, p *servertest.Process) []byte {
	t.Helper()
	body := `{"artifactHash":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","hashAlgorithm":"sha256","certificates":true}`
	resp, err := http.Post(p.URL+"/api/v1/timestamp", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("timestamp: %d %s %v", resp.StatusCode, b, err)
	}
	return b
}

// A limit that would refuse everything, or a proxy that is not an address,
// stops the server at start, naming the key.
func TestBadLimitsRefusedAtStart(t *testing.T) {
	for yml, want := range map[string]string{
		"limits:\n  certificates:\n    perIP: {rate: 5}\n":          "limits.certificates.perIP.burst is 0",
		"limits:\n  logEntries:\n    perIP: {rate: -1, burst: 1}\n": "limits.logEntries.perIP.rate -1",
		"limits:\n  trustedProxies: [lb.example]\n":                 `limits.trustedProxies: "lb.example" is not an IP address or CIDR`,
	} {
		cfg := filepath.Join(t.TempDir(), "server.yaml")
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := servertest.StartErr(servertest.Binary(t), t.TempDir(), "--dev-oidc", "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a refusal saying %q", yml, err, want)
		}
	}
}

func mustGet(t *testing.T, p *servertest.Process, path string) []byte {
	t.Helper()
	b, err := p.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantExpiry checks the expiry gauge of one certificate.
func wantExpiry(t *testing.T, p *servertest.Process, name string, c *x509.Certificate) {
	t.Helper()
	for _, m := range scrape(t, p)["signet_certificate_expiry_timestamp_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == name {
			if m.GetGauge().GetValue() != float64(c.NotAfter.Unix()) {
				t.Errorf("%s expiry %v, want %d", name, m.GetGauge().GetValue(), c.NotAfter.Unix())
			}
			return
		}
	}
	t.Errorf("no expiry gauge for %s", name)
}

// closedAfter waits until the server closes c (reading whatever it sends)
// and says how long that took; it fails the test after limit.
func closedAfter(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept the connection open for %v", limit)
			}
			return time.Since(start)
		}
	}
}
