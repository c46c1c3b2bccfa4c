package tsa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
)

// fakeTSA answers RFC 3161 queries; tamper may alter the token before signing.
func fakeTSA(t *testing.T, tamper func(*timestamp.Timestamp)) *httptest.Server {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "want application/timestamp-query", 400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		ts := &timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Nonce: req.Nonce,
			Time: time.Now(), Policy: asn1.ObjectIdentifier{1, 2, 3}, AddTSACertificate: req.Certificates}
		if tamper != nil {
			tamper(ts)
		}
		resp, err := ts.CreateResponse(cert, key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
}

func TestTimestamp(t *testing.T) {
	srv := fakeTSA(t, nil)
	defer srv.Close()
	c, err := New(srv.URL+"/api/v1/timestamp", nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := []byte("signature bytes")
	ts, err := c.Timestamp(context.Background(), sig)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := timestamp.ParseResponse(ts.Response)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(sig)
	if parsed.HashAlgorithm != crypto.SHA256 || string(parsed.HashedMessage) != string(want[:]) || len(parsed.Certificates) == 0 {
		t.Fatalf("token %+v", parsed)
	}
	if time.Since(ts.Time) > time.Minute {
		t.Fatalf("time %v", ts.Time)
	}
}

func TestRejectsMismatchedAnswers(t *testing.T) {
	cases := map[string]struct {
		tamper func(*timestamp.Timestamp)
		want   string
	}{
		"nonce":   {func(ts *timestamp.Timestamp) { ts.Nonce = big.NewInt(42) }, "nonce"},
		"message": {func(ts *timestamp.Timestamp) { ts.HashedMessage = make([]byte, 32) }, "different message"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			srv := fakeTSA(t, c.tamper)
			defer srv.Close()
			cl, _ := New(srv.URL, nil)
			if _, err := cl.Timestamp(context.Background(), []byte("sig")); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestErrorsAreQuoted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"code":3,"message":"hash algorithm SHA-1 is not accepted; use SHA-256","details":[]}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	if _, err := c.Timestamp(context.Background(), []byte("s")); err == nil || !strings.Contains(err.Error(), "HTTP 400: hash algorithm SHA-1 is not accepted") {
		t.Fatalf("err = %v", err)
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("not DER")) }))
	defer garbage.Close()
	c, _ = New(garbage.URL, nil)
	if _, err := c.Timestamp(context.Background(), []byte("s")); err == nil || !strings.Contains(err.Error(), "not a granted RFC 3161") {
		t.Fatalf("err = %v", err)
	}
	rejection, _ := timestamp.CreateErrorResponse(timestamp.Rejection, timestamp.BadAlgorithm)
	rej := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(rejection) }))
	defer rej.Close()
	c, _ = New(rej.URL, nil)
	if _, err := c.Timestamp(context.Background(), []byte("s")); err == nil || !strings.Contains(err.Error(), "not a granted") {
		t.Fatalf("rejection: %v", err)
	}
}
