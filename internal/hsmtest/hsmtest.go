// Package hsmtest gives tests a real PKCS#11 token: SoftHSM2 from Debian's
// packages (internal/toolcache), with a token directory of the test's own.
//
// SoftHSM reads its configuration once per process (at C_Initialize), so a
// test binary has one token directory: Token returns the same token to
// every test of a package, and tests tell their keys apart by label.
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/signet-dev/signet/internal/toolcache"
)

// A Token is an initialised SoftHSM2 token.
type Token struct {
	Module  string // path of libsofthsm2.so
	Util    string // path of softhsm2-util
	Conf    string // SOFTHSM2_CONF for every process that uses the token
	Label   string
	PIN     string
	PINFile string // holds PIN, for pin-source=
	dir     string
}

var shared struct {
	once sync.Once
	tok  *Token
	err  error
}

// Token returns the package's token, unpacking SoftHSM2 and initialising
// the token on first use, and sets SOFTHSM2_CONF for this process.
func New(t testing.TB) *Token {
	t.Helper()
	shared.once.Do(func() { shared.tok, shared.err = initToken() })
	if shared.err != nil {
		t.Fatalf("SoftHSM2 token: %v", shared.err)
	}
	// The process-wide setting is what the in-process module reads.
	os.Setenv("SOFTHSM2_CONF", shared.tok.Conf)
	return shared.tok
}

func initToken() (*Token, error) {
	root, err := toolcache.SoftHSM2.Root()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "signet-softhsm-")
	if err != nil {
		return nil, err
	}
	tok := &Token{
		Module: filepath.Join(root, "usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
		Util:   filepath.Join(root, "usr/bin/softhsm2-util"),
		Conf:   filepath.Join(dir, "softhsm2.conf"),
		Label:  "signet-test",
		PIN:    "4711-0815",
		dir:    dir,
	}
	if _, err := os.Stat(tok.Module); err != nil {
		return nil, fmt.Errorf("SoftHSM2 module: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dir, "tokens"))
	if err := os.WriteFile(tok.Conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	tok.PINFile = filepath.Join(dir, "pin")
	if err := os.WriteFile(tok.PINFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		return nil, err
	}
	if out, err := tok.util("--init-token", "--free", "--label", tok.Label, "--so-pin", "so-"+tok.PIN, "--pin", tok.PIN); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok, nil
}

func (k *Token) util(args ...string) ([]byte, error) {
	cmd := exec.Command(k.Util, append([]string{"--module", k.Module}, args...)...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+k.Conf)
	return cmd.CombinedOutput()
}

// URI is the PKCS#11 URI of the key labelled object, with the module and
// the PIN file in its query.
func (k *Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=%s", k.Label, object, k.Module, k.PINFile)
}

// Import puts a PEM PKCS#8 private key into the token as object.
func (k *Token) Import(t testing.TB, pemPath, object string, id string) {
	t.Helper()
	if out, err := k.util("--import", pemPath, "--token", k.Label, "--label", object, "--id", id, "--pin", k.PIN); err != nil {
		t.Fatalf("softhsm2-util --import %s: %v\n%s", pemPath, err, out)
	}
}

// Env is the environment a subprocess needs to use the token.
func (k *Token) Env() []string { return []string{"SOFTHSM2_CONF=" + k.Conf} }
