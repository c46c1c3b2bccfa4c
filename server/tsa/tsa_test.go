package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"

	"github.com/signet-dev/signet/server/apierror"
)

var oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// certSpec describes one certificate of a test chain.
type certSpec struct {
	cn          string
	isCA        bool
	eku         []asn1.ObjectIdentifier // encoded as an extension so criticality is controllable
	ekuCritical bool
	notBefore   time.Time
	notAfter    time.Time
}

type testChain struct {
	leafKey               *ecdsa.PrivateKey
	leaf, inter, rootCert *x509.Certificate
}

func (c testChain) certs() []*x509.Certificate {
	return []*x509.Certificate{c.leaf, c.inter, c.rootCert}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, spec certSpec, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	nb, na := spec.notBefore, spec.notAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.cn, Organization: []string{"signet test"}},
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
		IsCA:                  spec.isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if spec.isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if len(spec.eku) > 0 {
		v, err := asn1.Marshal(spec.eku)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: spec.ekuCritical, Value: v}}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newChain builds root -> intermediate -> leaf, the shape of a Sigstore TSA
// chain; leafSpec may vary the leaf for refusal tests.
func newChain(t testing.TB, leafSpec certSpec) testChain {
	t.Helper()
	rootKey, interKey, leafKey := mustKey(t), mustKey(t), mustKey(t)
	rootCert := issue(t, certSpec{cn: "test TSA root", isCA: true}, rootKey.Public(), nil, rootKey)
	inter := issue(t, certSpec{cn: "test TSA intermediate", isCA: true, eku: []asn1.ObjectIdentifier{oidTimeStamping}}, interKey.Public(), rootCert, rootKey)
	leaf := issue(t, leafSpec, leafKey.Public(), inter, interKey)
	return testChain{leafKey: leafKey, leaf: leaf, inter: inter, rootCert: rootCert}
}

var goodLeaf = certSpec{cn: "test TSA signing", eku: []asn1.ObjectIdentifier{oidTimeStamping}, ekuCritical: true}

type fixture struct {
	chain testChain
	tsa   *TSA
	srv   *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	chain := newChain(t, goodLeaf)
	ts, err := New(Options{Signer: chain.leafKey, Chain: chain.certs(), Logger: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	ts.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{chain: chain, tsa: ts, srv: srv}
}

func (f *fixture) post(t *testing.T, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/timestamp", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func counter(t *testing.T, ts *TSA, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := ts.metrics.requests.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// essCertIDv2 mirrors RFC 5035 SigningCertificateV2 closely enough to read
// the certificate hash.
type essCertIDv2 struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"`
	CertHash      []byte
	IssuerSerial  asn1.RawValue `asn1:"optional"`
}
type signingCertificateV2 struct {
	Certs []essCertIDv2
}

func TestDERRoundTrip(t *testing.T) {
	f := newFixture(t)
	roots := x509.NewCertPool()
	roots.AddCert(f.chain.rootCert)
	data := []byte("the signature being timestamped")

	for _, tc := range []struct {
		hash   crypto.Hash
		digest []byte
	}{
		{crypto.SHA256, func() []byte { d := sha256.Sum256(data); return d[:] }()},
		{crypto.SHA384, func() []byte { d := sha512.Sum384(data); return d[:] }()},
		{crypto.SHA512, func() []byte { d := sha512.Sum512(data); return d[:] }()},
	} {
		t.Run(tc.hash.String(), func(t *testing.T) {
			nonce := big.NewInt(0).SetBytes([]byte("nonce-" + tc.hash.String()))
			reqDER, err := (&timestamp.Request{HashAlgorithm: tc.hash, HashedMessage: tc.digest, Nonce: nonce, Certificates: true}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now().Add(-time.Second)
			resp, body := f.post(t, contentTypeQuery, reqDER)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != contentTypeReply {
				t.Errorf("Content-Type %q, want %q", ct, contentTypeReply)
			}
			got, err := timestamp.ParseResponse(body)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if got.HashAlgorithm != tc.hash || !bytes.Equal(got.HashedMessage, tc.digest) {
				t.Errorf("imprint %v %x, want %v %x", got.HashAlgorithm, got.HashedMessage, tc.hash, tc.digest)
			}
			if got.Nonce == nil || got.Nonce.Cmp(nonce) != 0 {
				t.Errorf("nonce %v, want %v", got.Nonce, nonce)
			}
			if !got.Policy.Equal(DefaultPolicyOID) {
				t.Errorf("policy %v, want %v", got.Policy, DefaultPolicyOID)
			}
			if got.Accuracy != time.Second {
				t.Errorf("accuracy %v, want 1s", got.Accuracy)
			}
			if got.SerialNumber == nil || got.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %v, want a positive random serial", got.SerialNumber)
			}
			if got.Time.Before(before) || got.Time.After(time.Now().Add(time.Second)) {
				t.Errorf("time %v not around now", got.Time)
			}
			// certReq: signing certificate first, then the intermediate.
			if len(got.Certificates) != 2 || !got.Certificates[0].Equal(f.chain.leaf) || !got.Certificates[1].Equal(f.chain.inter) {
				t.Fatalf("token carries %d certificates, want the signing certificate and the intermediate", len(got.Certificates))
			}
			p7, err := pkcs7.Parse(got.RawToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := p7.VerifyWithChain(roots); err != nil {
				t.Fatalf("token does not verify to the root: %v", err)
			}
			// ESSCertIDv2 (RFC 5816) must name the signing certificate.
			var sc signingCertificateV2
			if err := p7.UnmarshalSignedAttribute(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}, &sc); err != nil {
				t.Fatalf("no signingCertificateV2 attribute: %v", err)
			}
			h := tc.hash.New()
			h.Write(f.chain.leaf.Raw)
			if len(sc.Certs) != 1 || !bytes.Equal(sc.Certs[0].CertHash, h.Sum(nil)) {
				t.Errorf("ESSCertIDv2 does not hash the signing certificate")
			}
		})
	}
	if n := counter(t, f.tsa, "issued"); n != 3 {
		t.Errorf("issued counter %v, want 3", n)
	}
}

func TestSerialsDifferAndCertReqFalseOmitsCertificates(t *testing.T) {
	f := newFixture(t)
	d := sha256.Sum256([]byte("x"))
	reqDER, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]}).Marshal()
	var serials []*big.Int
	for range 2 {
		resp, body := f.post(t, contentTypeQuery, reqDER)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got, err := timestamp.ParseResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Certificates) != 0 {
			t.Errorf("certReq absent but token carries %d certificates", len(got.Certificates))
		}
		if got.Nonce != nil {
			t.Errorf("no nonce requested but token has %v", got.Nonce)
		}
		serials = append(serials, got.SerialNumber)
	}
	if serials[0].Cmp(serials[1]) == 0 {
		t.Errorf("two tokens share serial %v", serials[0])
	}
}

// TestSigstoreGoClient proves interop: sigstore-go's own TSA client fetches a
// timestamp and its trusted-root verifier accepts it.
func TestSigstoreGoClient(t *testing.T) {
	f := newFixture(t)
	signature := []byte("an artifact signature")
	client := sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: f.srv.URL + "/api/v1/timestamp", Timeout: 5 * time.Second})
	tsr, err := client.GetTimestamp(context.Background(), signature)
	if err != nil {
		t.Fatalf("sigstore-go GetTimestamp: %v", err)
	}
	authority := &root.SigstoreTimestampingAuthority{
		Root:          f.chain.rootCert,
		Intermediates: []*x509.Certificate{f.chain.inter},
		Leaf:          f.chain.leaf,
		URI:           f.srv.URL + "/api/v1/timestamp",
	}
	got, err := authority.Verify(tsr, signature)
	if err != nil {
		t.Fatalf("sigstore-go rejects the timestamp: %v", err)
	}
	if d := time.Since(got.Time); d < -2*time.Second || d > 5*time.Second {
		t.Errorf("verified time %v is not now", got.Time)
	}
	if _, err := authority.Verify(tsr, []byte("another signature")); err == nil {
		t.Error("sigstore-go accepted the timestamp for a different signature")
	}
	other := newChain(t, goodLeaf)
	if _, err := (&root.SigstoreTimestampingAuthority{Root: other.rootCert, Intermediates: []*x509.Certificate{other.inter}, Leaf: other.leaf}).Verify(tsr, signature); err == nil {
		t.Error("sigstore-go accepted the timestamp under an unrelated TSA chain")
	}
}

// TestJSONRequest uses the body sigstore-js sends.
func TestJSONRequest(t *testing.T) {
	f := newFixture(t)
	d := sha512.Sum384([]byte("sig"))
	body, _ := json.Marshal(map[string]any{
		"artifactHash":  base64.StdEncoding.EncodeToString(d[:]),
		"hashAlgorithm": "SHA384",
		"nonce":         1234567890123,
		"certificates":  true,
		"tsaPolicyOID":  "1.3.6.1.4.1.57264.2",
	})
	resp, out := f.post(t, "application/json; charset=utf-8", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	got, err := timestamp.ParseResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.HashAlgorithm != crypto.SHA384 || !bytes.Equal(got.HashedMessage, d[:]) {
		t.Errorf("imprint %v %x", got.HashAlgorithm, got.HashedMessage)
	}
	if got.Nonce == nil || got.Nonce.Int64() != 1234567890123 {
		t.Errorf("nonce %v, want 1234567890123", got.Nonce)
	}
	if len(got.Certificates) == 0 || !got.Certificates[0].Equal(f.chain.leaf) {
		t.Error("certificates:true did not include the signing certificate")
	}
}

func TestCertChain(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/api/v1/timestamp/certchain")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != contentTypeChain {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rest, _ := io.ReadAll(resp.Body)
	var got []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := f.chain.certs()
	if len(got) != len(want) {
		t.Fatalf("%d certificates, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("certificate %d is %q, want %q", i, got[i].Subject, want[i].Subject)
		}
	}
}

// rawRequest mirrors the TimeStampReq ASN.1 so tests can build requests the
// digitorus marshaller would not.
type rawRequest struct {
	Version        int
	MessageImprint struct {
		HashAlgorithm pkix.AlgorithmIdentifier
		HashedMessage []byte
	}
	ReqPolicy  asn1.ObjectIdentifier `asn1:"optional"`
	Nonce      *big.Int              `asn1:"optional"`
	CertReq    bool                  `asn1:"optional,default:false"`
	Extensions []pkix.Extension      `asn1:"tag:0,optional"`
}

func derRequest(t *testing.T, hashOID asn1.ObjectIdentifier, digest []byte, mutate func(*rawRequest)) []byte {
	t.Helper()
	r := rawRequest{Version: 1}
	r.MessageImprint.HashAlgorithm = pkix.AlgorithmIdentifier{Algorithm: hashOID, Parameters: asn1.NullRawValue}
	r.MessageImprint.HashedMessage = digest
	if mutate != nil {
		mutate(&r)
	}
	b, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	sha256OID := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	d := sha256.Sum256([]byte("x"))
	sha1Digest := make([]byte, 20)

	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		reason      string
		msg         string
	}{
		{"not DER", contentTypeQuery, []byte("definitely not ASN.1"), 400, "malformed", "not a DER TimeStampReq"},
		{"empty body", contentTypeQuery, nil, 400, "malformed", "empty timestamp request"},
		{"SHA-1 imprint", contentTypeQuery, derRequest(t, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, sha1Digest, nil), 400, "hash_algorithm", "SHA-1, which is too weak"},
		{"MD5 imprint", contentTypeQuery, derRequest(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, make([]byte, 16), nil), 400, "hash_algorithm", "use SHA-256, SHA-384 or SHA-512"},
		{"short digest", contentTypeQuery, derRequest(t, sha256OID, d[:20], nil), 400, "digest_length", "is 20 bytes but a SHA-256 digest is 32 bytes"},
		{"hex digest", contentTypeQuery, derRequest(t, sha256OID, []byte(strings.Repeat("ab", 32)), nil), 400, "digest_length", "is 64 bytes but a SHA-256 digest is 32 bytes"},
		{"foreign policy", contentTypeQuery, derRequest(t, sha256OID, d[:], func(r *rawRequest) { r.ReqPolicy = asn1.ObjectIdentifier{1, 2, 3, 4} }), 400, "policy", "only under policy 1.3.6.1.4.1.57264.2, not 1.2.3.4"},
		{"critical extension", contentTypeQuery, derRequest(t, sha256OID, d[:], func(r *rawRequest) {
			r.Extensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 5}, Critical: true, Value: []byte{5, 0}}}
		}), 400, "extension", "critical extension 1.2.3.5"},
		{"too large", contentTypeQuery, make([]byte, DefaultMaxRequestBytes+1), 413, "too_large", "larger than 8192 bytes"},
		{"no content type", "", derRequest(t, sha256OID, d[:], nil), 415, "content_type", "missing Content-Type"},
		{"wrong content type", "text/plain", derRequest(t, sha256OID, d[:], nil), 415, "content_type", `unsupported Content-Type "text/plain"`},
		{"JSON not JSON", contentTypeJSON, []byte("{"), 400, "malformed", "not a JSON timestamp request"},
		{"JSON no hash", contentTypeJSON, []byte(`{"hashAlgorithm":"sha256"}`), 400, "malformed", `no "artifactHash"`},
		{"JSON bad base64", contentTypeJSON, []byte(`{"artifactHash":"%%%","hashAlgorithm":"sha256"}`), 400, "malformed", "not standard base64"},
		{"JSON md5", contentTypeJSON, []byte(`{"artifactHash":"AAAAAAAAAAAAAAAAAAAAAA==","hashAlgorithm":"md5"}`), 400, "hash_algorithm", `unsupported "hashAlgorithm" "md5"`},
		{"JSON sha1", contentTypeJSON, []byte(`{"artifactHash":"` + base64.StdEncoding.EncodeToString(sha1Digest) + `","hashAlgorithm":"sha1"}`), 400, "hash_algorithm", "too weak"},
		{"JSON wrong length", contentTypeJSON, []byte(`{"artifactHash":"AAAA","hashAlgorithm":"sha512"}`), 400, "digest_length", "is 3 bytes but a SHA-512 digest is 64 bytes"},
		{"JSON bad policy", contentTypeJSON, []byte(`{"artifactHash":"` + base64.StdEncoding.EncodeToString(d[:]) + `","hashAlgorithm":"sha256","tsaPolicyOID":"one.two"}`), 400, "policy", "not a dotted object identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, f.tsa, tc.reason)
			resp, body := f.post(t, tc.contentType, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e apierror.Body
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %q", body)
			}
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tc.msg)
			}
			if after := counter(t, f.tsa, tc.reason); after != before+1 {
				t.Errorf("refusal counter %q went %v -> %v", tc.reason, before, after)
			}
		})
	}
	if n := counter(t, f.tsa, "issued"); n != 0 {
		t.Errorf("refused requests issued %v timestamps", n)
	}
}

func TestNewRefusesBadIdentity(t *testing.T) {
	good := newChain(t, goodLeaf)
	otherKey := mustKey(t)
	for _, tc := range []struct {
		name   string
		opts   func() Options
		errMsg string
	}{
		{"no signer", func() Options { return Options{Chain: good.certs()} }, "no signer"},
		{"leaf only", func() Options { return Options{Signer: good.leafKey, Chain: good.certs()[:1]} }, "chain has 1 certificate"},
		{"wrong key", func() Options { return Options{Signer: otherKey, Chain: good.certs()} }, "not the key of the TSA signing certificate"},
		{"no EKU", func() Options {
			c := newChain(t, certSpec{cn: "leaf"})
			return Options{Signer: c.leafKey, Chain: c.certs()}
		}, "exactly one extended key usage, timeStamping"},
		{"non-critical EKU", func() Options {
			c := newChain(t, certSpec{cn: "leaf", eku: []asn1.ObjectIdentifier{oidTimeStamping}})
			return Options{Signer: c.leafKey, Chain: c.certs()}
		}, "non-critical extended key usage"},
		{"extra EKU", func() Options {
			c := newChain(t, certSpec{cn: "leaf", eku: []asn1.ObjectIdentifier{oidTimeStamping, {1, 3, 6, 1, 5, 5, 7, 3, 3}}, ekuCritical: true})
			return Options{Signer: c.leafKey, Chain: c.certs()}
		}, "exactly one extended key usage"},
		{"CA leaf", func() Options {
			c := newChain(t, certSpec{cn: "leaf", isCA: true, eku: []asn1.ObjectIdentifier{oidTimeStamping}, ekuCritical: true})
			return Options{Signer: c.leafKey, Chain: c.certs()}
		}, "is a CA certificate"},
		{"expired leaf", func() Options {
			c := newChain(t, certSpec{cn: "leaf", eku: []asn1.ObjectIdentifier{oidTimeStamping}, ekuCritical: true,
				notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
			return Options{Signer: c.leafKey, Chain: c.certs()}
		}, "not now"},
		{"intermediate without timeStamping", func() Options {
			rootKey, interKey := mustKey(t), mustKey(t)
			r := issue(t, certSpec{cn: "root", isCA: true}, rootKey.Public(), nil, rootKey)
			i := issue(t, certSpec{cn: "plain intermediate", isCA: true}, interKey.Public(), r, rootKey)
			l := issue(t, goodLeaf, good.leafKey.Public(), i, interKey)
			return Options{Signer: good.leafKey, Chain: []*x509.Certificate{l, i, r}}
		}, `intermediate certificate "CN=plain intermediate`},
		{"foreign root", func() Options {
			other := newChain(t, goodLeaf)
			return Options{Signer: good.leafKey, Chain: []*x509.Certificate{good.leaf, good.inter, other.rootCert}}
		}, "does not verify"},
		{"leaf in CA position", func() Options {
			return Options{Signer: good.leafKey, Chain: []*x509.Certificate{good.leaf, good.leaf, good.rootCert}}
		}, "is not a CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts())
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
				t.Fatalf("New error %v, want one containing %q", err, tc.errMsg)
			}
		})
	}
}

func TestExpiredAtRequestTime(t *testing.T) {
	chain := newChain(t, goodLeaf)
	clock := time.Now()
	ts, err := New(Options{Signer: chain.leafKey, Chain: chain.certs(), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ts.Register(mux)
	clock = chain.leaf.NotAfter.Add(time.Minute)
	d := sha256.Sum256([]byte("x"))
	reqDER, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]}).Marshal()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/timestamp", bytes.NewReader(reqDER))
	r.Header.Set("Content-Type", contentTypeQuery)
	mux.ServeHTTP(rec, r)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "must issue a new one") {
		t.Fatalf("status %d body %s; want 503 naming the expired certificate", rec.Code, rec.Body)
	}
}

func TestMetricsRegisterOnce(t *testing.T) {
	chain := newChain(t, goodLeaf)
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Signer: chain.leafKey, Chain: chain.certs(), Metrics: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Signer: chain.leafKey, Chain: chain.certs(), Metrics: reg}); err == nil || !strings.Contains(err.Error(), "registering metrics") {
		t.Fatalf("second TSA on one registry: %v, want a registration error", err)
	}
}

func BenchmarkTimestamp(b *testing.B) {
	chain := newChain(b, goodLeaf)
	ts, err := New(Options{Signer: chain.leafKey, Chain: chain.certs()})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	ts.Register(mux)
	d := sha256.Sum256([]byte("x"))
	reqDER, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:], Nonce: big.NewInt(7), Certificates: true}).Marshal()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/timestamp", bytes.NewReader(reqDER))
		r.Header.Set("Content-Type", contentTypeQuery)
		mux.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// TestInProcessTimestamp: Timestamp answers what the HTTP API answers the
// request core/tsa sends (SHA-256 of the signature, certReq), and
// sigstore-go accepts it as a bundle's signedTimestamp for that signature.
func TestInProcessTimestamp(t *testing.T) {
	f := newFixture(t)
	signature := []byte("an envelope signature")
	raw, err := f.tsa.Timestamp(context.Background(), signature)
	if err != nil {
		t.Fatal(err)
	}
	got, err := timestamp.ParseResponse(raw)
	if err != nil {
		t.Fatalf("not a granted TimeStampResp: %v", err)
	}
	d := sha256.Sum256(signature)
	if got.HashAlgorithm != crypto.SHA256 || !bytes.Equal(got.HashedMessage, d[:]) {
		t.Errorf("imprint %v %x, want SHA-256 %x", got.HashAlgorithm, got.HashedMessage, d)
	}
	if len(got.Certificates) != 2 || !got.Certificates[0].Equal(f.chain.leaf) || !got.Certificates[1].Equal(f.chain.inter) {
		t.Errorf("token carries %d certificates, want the signing certificate and the intermediate", len(got.Certificates))
	}
	if !got.Policy.Equal(DefaultPolicyOID) || got.Accuracy != Accuracy {
		t.Errorf("policy %v accuracy %v", got.Policy, got.Accuracy)
	}
	// The same request over HTTP: the same kind of token.
	reqDER, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:], Certificates: true}).Marshal()
	resp, body := f.post(t, contentTypeQuery, reqDER)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	viaHTTP, err := timestamp.ParseResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	if viaHTTP.HashAlgorithm != got.HashAlgorithm || !bytes.Equal(viaHTTP.HashedMessage, got.HashedMessage) || len(viaHTTP.Certificates) != len(got.Certificates) ||
		!viaHTTP.Policy.Equal(got.Policy) || (viaHTTP.Nonce == nil) != (got.Nonce == nil) || viaHTTP.AddTSACertificate != got.AddTSACertificate {
		t.Errorf("in process %+v\nover HTTP %+v", got, viaHTTP)
	}
	authority := &root.SigstoreTimestampingAuthority{Root: f.chain.rootCert, Intermediates: []*x509.Certificate{f.chain.inter}, Leaf: f.chain.leaf}
	if _, err := authority.Verify(raw, signature); err != nil {
		t.Fatalf("sigstore-go rejects the timestamp: %v", err)
	}
	if _, err := authority.Verify(raw, []byte("another signature")); err == nil {
		t.Error("sigstore-go accepted the timestamp for a different signature")
	}
	if n := counter(t, f.tsa, "issued"); n != 2 {
		t.Errorf("issued counter %v, want 2 (in process and over HTTP)", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.tsa.Timestamp(ctx, signature); err == nil {
		t.Error("timestamped under a canceled context")
	}
	if _, err := f.tsa.Timestamp(context.Background(), nil); err == nil {
		t.Error("timestamped an empty signature")
	}
}

func TestInProcessTimestampExpired(t *testing.T) {
	chain := newChain(t, goodLeaf)
	clock := time.Now()
	ts, err := New(Options{Signer: chain.leafKey, Chain: chain.certs(), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	clock = chain.leaf.NotAfter.Add(time.Minute)
	if _, err := ts.Timestamp(context.Background(), []byte("sig")); err == nil || !strings.Contains(err.Error(), "must issue a new one") {
		t.Fatalf("expired TSA certificate: %v, want an error naming it", err)
	}
}
