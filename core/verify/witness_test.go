package verify_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/core/verify"
)

type testWitness struct {
	name   string
	vkey   string // cosignature/v1
	signer note.Signer
}

func newTestWitness(t *testing.T, name string) testWitness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testWitness{name: name, vkey: cv, signer: s}
}

// cosigned is a checkpoint signed by a log key and cosigned by ws.
func cosigned(t *testing.T, ws ...testWitness) []byte {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	signers := []note.Signer{logSigner}
	for _, w := range ws {
		signers = append(signers, w.signer)
	}
	n, err := note.Sign(&note.Note{Text: "log.example\n7\nq6J8eJJXoGZLLJnRHfNMtkLk8JDVq4gC8W2qXo5vBHQ=\n"}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWitnessPolicyThresholds(t *testing.T) {
	a, b, c := newTestWitness(t, "a.example"), newTestWitness(t, "b.example"), newTestWitness(t, "c.example")
	defs := fmt.Sprintf("witness a %s https://a.example\nwitness b %s\nwitness c %s\n", a.vkey, b.vkey, c.vkey)
	// Witness names in the policy are local; the keys carry their own.
	for _, tc := range []struct {
		policy  string
		signers []testWitness
		ok      bool
		want    string // in the failure
	}{
		{"quorum a", []testWitness{a}, true, ""},
		{"quorum a", []testWitness{b}, false, "a (no cosignature)"},
		{"quorum a", nil, false, "cosigned by none"},
		{"group g 2 a b c\nquorum g", []testWitness{a, c}, true, ""},
		{"group g 2 a b c\nquorum g", []testWitness{c}, false, "quorum group g (2 of a, b, c); cosigned by c; not by a (no cosignature), b (no cosignature)"},
		{"group g all a b\nquorum g", []testWitness{a, b}, true, ""},
		{"group g all a b\nquorum g", []testWitness{a}, false, "b (no cosignature)"},
		{"group g any a b\nquorum g", []testWitness{b}, true, ""},
		// Nested: a, and one of b or c.
		{"group bc any b c\ngroup top all a bc\nquorum top", []testWitness{a, c}, true, ""},
		{"group bc any b c\ngroup top all a bc\nquorum top", []testWitness{b, c}, false, "a (no cosignature)"},
		{"quorum none", nil, true, ""},
	} {
		p, err := verify.ParseWitnessPolicy([]byte(defs + tc.policy + "\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.policy, err)
		}
		got, err := p.Check(cosigned(t, tc.signers...))
		if tc.ok != (err == nil) {
			t.Errorf("%q with %d cosigners: err %v, want ok=%v", tc.policy, len(tc.signers), err, tc.ok)
			continue
		}
		if err != nil {
			var ve *verify.Error
			if !errors.As(err, &ve) || ve.Check != verify.CheckWitness || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: %v, want the witness check saying %q", tc.policy, err, tc.want)
			}
			continue
		}
		if len(got) != len(tc.signers) {
			t.Errorf("%q: cosigners %v, want %d", tc.policy, got, len(tc.signers))
		}
	}
}

func TestWitnessPolicyBadCosignature(t *testing.T) {
	a := newTestWitness(t, "a.example")
	p, err := verify.ParseWitnessPolicy([]byte("witness a " + a.vkey + "\nquorum a\n"))
	if err != nil {
		t.Fatal(err)
	}
	cp := string(cosigned(t, a))
	// A witness key under the right name and key hash, but whose signature
	// is over other bytes: flip one character of the last line's base64.
	lines := strings.Split(strings.TrimSuffix(cp, "\n"), "\n")
	last := lines[len(lines)-1]
	i := len(last) - 5
	ch := byte('A')
	if last[i] == 'A' {
		ch = 'B'
	}
	lines[len(lines)-1] = last[:i] + string(ch) + last[i+1:]
	_, err = p.Check([]byte(strings.Join(lines, "\n") + "\n"))
	if err == nil || !strings.Contains(err.Error(), "a (cosignature does not verify)") {
		t.Fatalf("a changed cosignature: %v", err)
	}
}

func TestParseWitnessPolicyRefusals(t *testing.T) {
	a := newTestWitness(t, "a.example")
	w := "witness a " + a.vkey + "\n"
	for policy, want := range map[string]string{
		w:                                   "no quorum line",
		"witness a notakey\nquorum a\n":     "line 1: witness a: key \"notakey\" is not a C2SP signed-note verifier key",
		w + "quorum b\n":                    "line 2: quorum \"b\" is not a witness or group defined above it",
		w + "group g 2 a\nquorum g\n":       "line 2: group g: threshold \"2\" must be any, all or a number from 1 to 1",
		w + "group g 1 b\nquorum g\n":       "line 2: group g: member \"b\" is not a witness or group",
		w + w + "quorum a\n":                "line 2: \"a\" is defined twice",
		w + "quorum a\nquorum a\n":          "line 3: a second quorum line",
		"witnes a " + a.vkey + "\n":         "line 1: unknown keyword \"witnes\"",
		"witness all " + a.vkey + "\n":      "\"all\" is a keyword",
		w + "group g\nquorum g\n":           "line 2: want \"group NAME K|all|any MEMBER...\"",
		"witness a " + a.vkey + " u x\n":    "line 1: want \"witness NAME VKEY [URL]\"",
		"# only a comment\n\nquorum none\n": "",
	} {
		_, err := verify.ParseWitnessPolicy([]byte(policy))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", policy, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want %q", policy, err, want)
		}
	}
}
