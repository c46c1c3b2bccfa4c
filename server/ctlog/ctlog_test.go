package ctlog

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/signet-dev/signet/server/precert"
)

type testCA struct {
	rootKey, key *ecdsa.PrivateKey
	root, inter  *x509.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := &testCA{}
	ca.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, rt, rt, &ca.rootKey.PublicKey, ca.rootKey)
	ca.root, _ = x509.ParseCertificate(der)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "intermediate"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, _ = x509.CreateCertificate(rand.Reader, it, ca.root, &ca.key.PublicKey, ca.rootKey)
	ca.inter, _ = x509.ParseCertificate(der)
	return ca
}

func (ca *testCA) leaf(t *testing.T, extra ...pkix.Extension) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	return &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), NotBefore: now, NotAfter: now.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"a@example.com"}, ExtraExtensions: extra}, k
}

func (ca *testCA) sign(t *testing.T, tmpl *x509.Certificate, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var poison = pkix.Extension{Id: precert.OIDPoison, Critical: true, Value: asn1.NullBytes}

func openTest(t *testing.T, ca *testCA) *Log {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := Open(context.Background(), Options{Dir: t.TempDir(), Signer: key, Origin: "example.com/ctlog", CAChain: []*x509.Certificate{ca.inter, ca.root}, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// The DER rewrite gives what certificate-transparency-go's RemoveCTPoison
// gives, wherever the poison sits among the extensions.
func TestPrecertTBSMatchesCTGo(t *testing.T) {
	ca := newTestCA(t)
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}
	for name, exts := range map[string][]pkix.Extension{"last": {other, poison}, "first": {poison, other}, "alone": {poison}} {
		tmpl, k := ca.leaf(t, exts...)
		der := ca.sign(t, tmpl, &k.PublicKey)
		got, err := precertTBS(der)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, _ := x509.ParseCertificate(der)
		want, err := ctx509.RemoveCTPoison(c.RawTBSCertificate)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: TBS differs from ct-go's (%v)", name, err)
		}
	}
	for name, exts := range map[string][]pkix.Extension{"no poison": {other}, "two poisons": {poison, {Id: precert.OIDPoison, Value: asn1.NullBytes}}} {
		tmpl, k := ca.leaf(t, exts...)
		if _, err := precertTBS(ca.sign(t, tmpl, &k.PublicKey)); err == nil || !strings.Contains(err.Error(), "poison") {
			t.Errorf("%s: %v, want a refusal naming the poison", name, err)
		}
	}
	if _, err := precertTBS([]byte("not DER")); err == nil {
		t.Error("garbage accepted")
	}
}

// The SCT the CA gets verifies, with ct-go as sigstore-go uses it, over the
// certificate that embeds it; each carries its leaf index.
func TestSubmitPrecertSCTVerifies(t *testing.T) {
	ca := newTestCA(t)
	l := openTest(t, ca)
	for i := range 3 {
		tmpl, k := ca.leaf(t)
		pre := *tmpl
		pre.ExtraExtensions = []pkix.Extension{poison}
		sct, err := l.SubmitPrecert(context.Background(), ca.sign(t, &pre, &k.PublicKey), ca.inter)
		if err != nil {
			t.Fatal(err)
		}
		if want := []byte{0, 0, 5, 0, 0, 0, 0, byte(i)}; !bytes.Equal(sct.Extensions, want) {
			t.Errorf("SCT %d extensions %x, want leaf_index %d (%x)", i, sct.Extensions, i, want)
		}
		raw, _ := cttls.Marshal(*sct)
		list, _ := cttls.Marshal(ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}})
		val, _ := asn1.Marshal(list)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}, Value: val}}
		final, _ := ctx509.ParseCertificate(ca.sign(t, tmpl, &k.PublicKey))
		issuer, _ := ctx509.ParseCertificate(ca.inter.Raw)
		if err := ctutil.VerifySCT(l.PublicKey(), []*ctx509.Certificate{final, issuer}, sct, true); err != nil {
			t.Errorf("SCT %d does not verify: %v", i, err)
		}
		if sct.LogID.KeyID != [32]byte(l.LogID()) || sct.SCTVersion != ct.V1 {
			t.Errorf("SCT %d: log ID %x version %v", i, sct.LogID.KeyID, sct.SCTVersion)
		}
	}
}

// The public submission API is tesseract's: a chain to the CA's root is
// logged, anything else refused; monitoring serves only the log's files.
func TestHTTPAPI(t *testing.T) {
	ca := newTestCA(t)
	l := openTest(t, ca)
	mux := http.NewServeMux()
	l.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(chain ...[]byte) int {
		body, _ := json.Marshal(ct.AddChainRequest{Chain: chain})
		resp, err := http.Post(srv.URL+"/ctlog/ct/v1/add-pre-chain", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tmpl, k := ca.leaf(t, poison)
	if code := post(ca.sign(t, tmpl, &k.PublicKey), ca.inter.Raw, ca.root.Raw); code != http.StatusOK {
		t.Errorf("genuine chain: %d", code)
	}
	other := newTestCA(t)
	tmpl, k = other.leaf(t, poison)
	if code := post(other.sign(t, tmpl, &k.PublicKey), other.inter.Raw, other.root.Raw); code != http.StatusBadRequest {
		t.Errorf("chain to another root: %d, want 400", code)
	}
	time.Sleep(300 * time.Millisecond) // a checkpoint interval
	for path, want := range map[string]int{"/ctlog/checkpoint": 200, "/ctlog/.roots.pem": 404, "/ctlog/tile/../.roots.pem": 404, "/ctlog/tile/0/000.p/1": 200, "/ctlog/tile/data/000.p/1": 200} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
