//go:build cgo

package keyref_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/internal/hsmtest"
)

func TestPKCS11SignsInTheToken(t *testing.T) {
	tok := hsmtest.New(t)
	ec, err := keyref.GeneratePKCS11(tok.URI("ec-key"), keyref.ECDSAP256, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := keyref.GeneratePKCS11(tok.URI("ed-key"), keyref.Ed25519, keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// Opened again by URI, the keys are the ones generated.
	ec2, err := keyref.Open(context.Background(), tok.URI("ec-key"), keyref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !ec2.Public().(*ecdsa.PublicKey).Equal(ec.Public()) {
		t.Fatal("reopened EC key has another public key")
	}

	digest := sha256.Sum256([]byte("payload"))
	// Signatures from parallel goroutines all verify: sessions are pooled, not shared.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig, err := ec2.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				errs <- err
				return
			}
			if !ecdsa.VerifyASN1(ec.Public().(*ecdsa.PublicKey), digest[:], sig) {
				errs <- errors.New("ECDSA signature from the token does not verify")
			}
			msg := []byte(fmt.Sprintf("checkpoint %d", i))
			sig, err = ed.Sign(nil, msg, crypto.Hash(0))
			if err != nil {
				errs <- err
				return
			}
			if !ed25519.Verify(ed.Public().(ed25519.PublicKey), msg, sig) {
				errs <- errors.New("Ed25519 signature from the token does not verify")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if _, err := ed.Sign(nil, digest[:], crypto.SHA256); err == nil {
		t.Fatal("Ed25519ph was accepted; the token key signs messages, not digests")
	}
	// A second key of the same label is refused, not made.
	if _, err := keyref.GeneratePKCS11(tok.URI("ec-key"), keyref.ECDSAP256, keyref.Options{}); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("generating over an existing key: %v", err)
	}
}

func TestPKCS11Refusals(t *testing.T) {
	tok := hsmtest.New(t)
	if _, err := keyref.GeneratePKCS11(tok.URI("refusal-key"), keyref.ECDSAP256, keyref.Options{}); err != nil {
		t.Fatal(err)
	}
	open := func(ref string, env map[string]string) error {
		_, err := keyref.Open(context.Background(), ref, keyref.Options{Getenv: func(k string) string { return env[k] }})
		return err
	}
	for _, c := range []struct {
		name  string
		ref   string
		env   map[string]string
		cause error
		say   string
	}{
		{"wrong PIN", fmt.Sprintf("pkcs11:token=%s;object=refusal-key?module-path=%s&pin-value=0000", tok.Label, tok.Module), nil, keyref.ErrPIN, "check the PIN"},
		{"no PIN", fmt.Sprintf("pkcs11:token=%s;object=refusal-key?module-path=%s", tok.Label, tok.Module), nil, keyref.ErrPIN, "SIGNET_PKCS11_PIN"},
		{"missing label", tok.URI("no-such-key"), nil, keyref.ErrKeyNotFound, `label "no-such-key"`},
		{"missing token", strings.Replace(tok.URI("refusal-key"), "token="+tok.Label, "token=other", 1), nil, keyref.ErrTokenNotFound, `"` + tok.Label + `"`},
		{"no module", fmt.Sprintf("pkcs11:token=%s;object=refusal-key", tok.Label), nil, keyref.ErrModule, "module-path"},
		{"module from env", fmt.Sprintf("pkcs11:token=%s;object=refusal-key", tok.Label), map[string]string{"SIGNET_PKCS11_MODULE": tok.Module, "SIGNET_PKCS11_PIN": tok.PIN}, nil, ""},
		{"bad module", fmt.Sprintf("pkcs11:token=%s;object=k?module-path=/nonexistent.so&pin-value=1", tok.Label), nil, keyref.ErrModule, "/nonexistent.so"},
		{"no key named", fmt.Sprintf("pkcs11:token=%s?module-path=%s", tok.Label, tok.Module), nil, keyref.ErrBadURI, "object="},
		{"unsupported scheme", "k8s://ns/secret", nil, keyref.ErrUnsupportedScheme, "pkcs11:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := open(c.ref, c.env)
			if c.cause == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.cause) || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("got %v; want %v saying %q", err, c.cause, c.say)
			}
			if strings.Contains(err.Error(), "0000") || strings.Contains(err.Error(), tok.PIN) {
				t.Fatalf("the error shows the PIN: %v", err)
			}
		})
	}
}
