// Package kmstest gives tests a real AWS KMS API on loopback: local-kms
// (internal/toolcache) serving over TLS under a test CA, reached through
// sigstore/sigstore's awskms provider as a deployment reaches AWS.
//
// The provider always speaks HTTPS to the endpoint named in the URI
// (awskms://HOST:PORT/alias/NAME), so the emulator serves a certificate
// for 127.0.0.1 and the AWS SDK trusts its CA through AWS_CA_BUNDLE.
package kmstest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/kms/aws"

	"github.com/signet-dev/signet/internal/toolcache"
)

// Region is the AWS region of the emulator's keys; the SDK must be told
// one (AWS_REGION), and the emulator names its ARNs with it.
const Region = "eu-west-2"

// A KMS is a running emulator.
type KMS struct {
	Endpoint string // HOST:PORT, as an awskms:// URI names it
	CAFile   string // PEM CA that signed the emulator's certificate
	dir      string
	log      *os.File
}

// Start runs an emulator with an empty key database for the test and stops
// it when the test ends.
func Start(t testing.TB) *KMS {
	t.Helper()
	bin, err := toolcache.LocalKMS.Binary()
	if err != nil {
		t.Fatalf("local-kms: %v", err)
	}
	dir := t.TempDir()
	k := &KMS{CAFile: filepath.Join(dir, "ca.pem"), dir: dir}
	cert, key := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")
	if err := writeTLS(k.CAFile, cert, key); err != nil {
		t.Fatal(err)
	}
	addrFile := filepath.Join(dir, "addr")
	if k.log, err = os.Create(filepath.Join(dir, "local-kms.log")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data", filepath.Join(dir, "db"),
		"-tls-cert", cert, "-tls-key", key, "-addr-file", addrFile, "-region", Region)
	cmd.Stdout, cmd.Stderr = k.log, k.log
	// The emulator dies with the test binary, even one killed by its timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		k.log.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			k.Endpoint = string(b)
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("local-kms exited before listening: %v\n%s", err, k.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("local-kms did not listen within 30s\n%s", k.Log())
		}
	}
	return k
}

// Log is what the emulator printed so far (one line per request).
func (k *KMS) Log() string {
	b, _ := os.ReadFile(k.log.Name())
	return string(b)
}

// Env is what a process needs to reach the emulator as AWS: a region,
// static credentials (the emulator accepts any), its CA, and no shared
// config, profile or instance metadata, so nothing outside the test is read
// and the SDK never calls the EC2 metadata address.
func (k *KMS) Env() []string {
	return append(NoCredentialsEnv(k.dir, k.CAFile),
		"AWS_ACCESS_KEY_ID=AKIAKMSTEST000000000",
		"AWS_SECRET_ACCESS_KEY=kmstest-secret",
	)
}

// NoCredentialsEnv is Env without credentials: the SDK's default chain then
// finds none (environment, shared files in dir that do not exist, no
// metadata service).
func NoCredentialsEnv(dir, caFile string) []string {
	return []string{
		"AWS_REGION=" + Region,
		"AWS_CA_BUNDLE=" + caFile,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"),
		"AWS_PROFILE=",
		"AWS_SESSION_TOKEN=",
		"AWS_ROLE_ARN=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_KMS=",
	}
}

// Dir is a directory of the emulator's test, for files that must not exist.
func (k *KMS) Dir() string { return k.dir }

// SetEnv sets Env in this process for the rest of the test (for keyref in
// process, and for servers the test starts, which inherit it).
func (k *KMS) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range k.Env() {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
}

// URI is the awskms:// reference of the key with alias alias/name.
func (k *KMS) URI(name string) string {
	return "awskms://" + k.Endpoint + "/alias/" + name
}

// CreateKey makes a SIGN_VERIFY key of spec (ECC_NIST_P256, ECC_NIST_P384,
// RSA_2048, …) under alias/name, through the provider's own CreateKey, and
// returns its public key. The process environment must be SetEnv's.
func (k *KMS) CreateKey(t testing.TB, name, spec string) crypto.PublicKey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sv, err := aws.LoadSignerVerifier(ctx, k.URI(name))
	if err != nil {
		t.Fatalf("awskms client for %s: %v", name, err)
	}
	pub, err := sv.CreateKey(ctx, spec)
	if err != nil {
		t.Fatalf("creating %s key %s in local-kms: %v\n%s", spec, name, err, k.Log())
	}
	return pub
}

// Signatures counts the signatures the emulator made with the key of
// alias/name: proof that signing went to the KMS.
func (k *KMS) Signatures(t testing.TB, name string) int {
	t.Helper()
	arn := k.keyARN(t, name)
	n := 0
	for _, l := range strings.Split(k.Log(), "\n") {
		if strings.Contains(l, "message signed") && strings.Contains(l, arn) {
			n++
		}
	}
	return n
}

// keyARN asks the emulator for the ARN of the key alias/name points at
// (its log names keys by ARN). The emulator checks no request signature,
// so a plain DescribeKey call does.
func (k *KMS) keyARN(t testing.TB, name string) string {
	t.Helper()
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodPost, "https://"+k.Endpoint+"/", strings.NewReader(fmt.Sprintf(`{"KeyId":"alias/%s"}`, name)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.DescribeKey")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("DescribeKey alias/%s: %v", name, err)
	}
	defer resp.Body.Close()
	var out struct{ KeyMetadata struct{ Arn string } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.KeyMetadata.Arn == "" {
		t.Fatalf("DescribeKey alias/%s: status %d, %v", name, resp.StatusCode, err)
	}
	return out.KeyMetadata.Arn
}

// ClosedEndpoint is a loopback HOST:PORT nothing listens on: a KMS that
// cannot be reached (connections are refused at once).
func ClosedEndpoint(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// writeTLS makes a CA and, signed by it, a certificate for 127.0.0.1.
func writeTLS(caFile, certFile, keyFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kmstest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "local-kms"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", leafDER}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	return nil
}
