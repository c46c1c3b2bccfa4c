package keyref_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/internal/kmstest"
)

// Keys in a real AWS KMS API (local-kms on loopback, over TLS), opened by
// awskms:// URI through sigstore/sigstore's provider: signatures are made
// by the KMS and verify with the key's public key.
func TestAWSKMSSignsInTheKMS(t *testing.T) {
	k := kmstest.Start(t)
	k.SetEnv(t)
	ctx := context.Background()

	made, err := keyref.GenerateKMS(ctx, k.URI("gen-ec"), keyref.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := keyref.Open(ctx, k.URI("gen-ec"), keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := ec.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || !pub.Equal(made.Public()) {
		t.Fatalf("reopened key: %T %v, want the P-256 key GenerateKMS made", ec.Public(), ec.Public())
	}
	before := k.Signatures(t, "gen-ec")

	// Parallel signatures all verify, and every one was made by the KMS.
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := sha256.Sum256(fmt.Appendf(nil, "payload %d", i))
			sig, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				errs <- err
				return
			}
			if !ecdsa.VerifyASN1(pub, digest[:], sig) {
				errs <- errors.New("the KMS's ECDSA signature does not verify")
			}
			other := sha256.Sum256([]byte("another payload"))
			if ecdsa.VerifyASN1(pub, other[:], sig) {
				errs <- errors.New("a signature verified for another digest")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := k.Signatures(t, "gen-ec") - before; got != n {
		t.Errorf("the emulator logged %d signatures, want %d: signing did not go to the KMS", got, n)
	}

	// A P-384 key signs SHA-384 digests.
	k.CreateKey(t, "p384", "ECC_NIST_P384")
	p384, err := keyref.Open(ctx, k.URI("p384"), keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d384 := sha512.Sum384([]byte("payload"))
	sig, err := p384.Sign(rand.Reader, d384[:], crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(p384.Public().(*ecdsa.PublicKey), d384[:], sig) {
		t.Error("the P-384 signature does not verify")
	}

	// Creation refuses what it cannot make, and never reuses a key.
	for _, c := range []struct {
		ref   string
		alg   keyref.Algorithm
		cause error
		say   string
	}{
		{k.URI("gen-ec"), keyref.ECDSAP256, keyref.ErrBadURI, "already holds a key under that alias"},
		{k.URI("gen-ed"), keyref.Ed25519, keyref.ErrKeyType, "PKCS#11"},
		{"awskms://" + k.Endpoint + "/1234abcd-12ab-34cd-56ef-1234567890ab", keyref.ECDSAP256, keyref.ErrBadURI, "alias/NAME"},
		{"hashivault://signet-log", keyref.Ed25519, keyref.ErrKeyNotFound, "vault write transit/keys/NAME"},
	} {
		_, err := keyref.GenerateKMS(ctx, c.ref, c.alg)
		if !errors.Is(err, c.cause) || !strings.Contains(err.Error(), c.say) {
			t.Errorf("GenerateKMS(%s, %s) = %v; want %v saying %q", c.ref, c.alg, err, c.cause, c.say)
		}
	}
}

// Every way an awskms:// key fails to open says which key and what to fix,
// and none waits longer than KMSTimeout.
func TestAWSKMSRefusals(t *testing.T) {
	k := kmstest.Start(t)
	k.SetEnv(t)
	k.CreateKey(t, "ec", "ECC_NIST_P256")
	k.CreateKey(t, "rsa", "RSA_2048")
	defer func(d time.Duration) { keyref.KMSTimeout = d }(keyref.KMSTimeout)
	keyref.KMSTimeout = 5 * time.Second

	// A KMS that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed := kmstest.ClosedEndpoint(t)

	for _, c := range []struct {
		name  string
		ref   string
		env   map[string]string
		cause error
		say   []string
	}{
		{"alias that does not exist", k.URI("no-such-key"), nil, keyref.ErrKeyNotFound,
			[]string{k.URI("no-such-key"), "holds no key of that ID, ARN or alias", "create the key"}},
		{"port closed", "awskms://" + closed + "/alias/ec", nil, keyref.ErrKMS,
			[]string{"awskms://" + closed + "/alias/ec", "cannot connect to " + closed}},
		{"KMS never answers", "awskms://" + silent.Addr().String() + "/alias/ec", nil, keyref.ErrKMS,
			[]string{"no answer within 5s"}},
		{"no credentials", k.URI("ec"), map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, keyref.ErrKMSCredentials,
			[]string{k.URI("ec"), "no AWS credentials", "AWS_ACCESS_KEY_ID"}},
		{"no region", k.URI("ec"), map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, keyref.ErrKMS,
			[]string{"no AWS region", "AWS_REGION"}},
		{"endpoint certificate not trusted", k.URI("ec"), map[string]string{"AWS_CA_BUNDLE": ""}, keyref.ErrKMS,
			[]string{"TLS certificate is not trusted", "AWS_CA_BUNDLE"}},
		{"CA bundle that does not exist", k.URI("ec"), map[string]string{"AWS_CA_BUNDLE": k.Dir() + "/no-such-ca.pem"}, keyref.ErrKMS,
			[]string{"configuration does not load", "AWS_CA_BUNDLE", "no-such-ca.pem"}},
		{"RSA key that signs RSASSA-PSS", k.URI("rsa"), nil, keyref.ErrKeyType,
			[]string{k.URI("rsa"), "RSASSA-PSS", "ECC_NIST_P256"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for name, v := range c.env {
				t.Setenv(name, v)
			}
			start := time.Now()
			s, err := keyref.Open(context.Background(), c.ref, keyref.Options{})
			took := time.Since(start)
			if err == nil {
				t.Fatalf("opened %s (%T)", c.ref, s.Public())
			}
			t.Log(err)
			if !errors.Is(err, c.cause) {
				t.Errorf("error is not %v: %v", c.cause, err)
			}
			for _, w := range c.say {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if took > keyref.KMSTimeout+2*time.Second {
				t.Errorf("took %v, past KMSTimeout %v", took, keyref.KMSTimeout)
			}
		})
	}
}
