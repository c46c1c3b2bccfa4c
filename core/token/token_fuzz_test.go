package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzParseClaims holds the reading of an identity token (which arrives
// from the environment, a file or a CI endpoint, and whose signature only
// the CA checks) to: a token either yields claims or an error; what it
// yields is what the token's payload says, decoded independently (so no
// spelling makes signet report an issuer or identity the token does not
// carry); a token minted afresh with those claims reads back the same; and
// Detect reports exactly what ParseClaims read. Seeds
// (testdata/fuzz/FuzzParseClaims) are tokens shaped as GitHub Actions,
// Google, GitLab and Kubernetes issue them, and edge cases. For a longer run:
//
//	go test ./core/token -run '^$' -fuzz '^FuzzParseClaims$' -fuzztime 10m
func FuzzParseClaims(f *testing.F) {
	f.Add(mint(f, map[string]any{"iss": "https://accounts.example", "sub": "1", "email": "a@example.com", "email_verified": "true", "aud": []string{"sigstore", "x"}, "exp": 1.7e9}))
	f.Add("a.b.c")
	f.Add("")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseClaims(raw)
		if err == nil {
			checkAgainstPayload(t, raw, c)
			checkProofSubject(t, c)
			again, err := ParseClaims(mint(t, remint(c)))
			if err != nil {
				t.Fatalf("a token minted with the claims read is refused: %v", err)
			}
			if !sameClaims(c, again) {
				t.Fatalf("claims %+v read back as %+v", c, again)
			}
		} else if !sameClaims(c, Claims{}) {
			t.Fatalf("ParseClaims returned claims %+v with error %v", c, err)
		}

		// Detect reads the same claims from $SIGSTORE_ID_TOKEN.
		o := baseOptions(map[string]string{"SIGSTORE_ID_TOKEN": raw})
		o.Now = func() time.Time { return now }
		tok, derr := Detect(context.Background(), o)
		trimmed := strings.TrimSpace(raw)
		want, werr := ParseClaims(trimmed)
		switch {
		case trimmed == "":
			if !errors.Is(derr, ErrNoToken) {
				t.Fatalf("an empty SIGSTORE_ID_TOKEN: %v, want ErrNoToken", derr)
			}
		case werr != nil || (!want.Expiry.IsZero() && !now.Before(want.Expiry)):
			if derr == nil {
				t.Fatalf("Detect accepted a token ParseClaims refuses (%v) or that expired at %s", werr, want.Expiry)
			}
		case derr != nil:
			t.Fatalf("Detect refused a valid, unexpired token: %v", derr)
		case tok.Raw != trimmed || tok.Source != SourceEnv || !sameClaims(tok.Claims, want):
			t.Fatalf("Detect returned %+v, want the claims %+v from %s", tok, want, SourceEnv)
		}
	})
}

// checkAgainstPayload decodes the token's payload with encoding/json and
// holds the claims to it.
func checkAgainstPayload(t *testing.T, raw string, c Claims) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token of %d parts", len(parts))
	}
	var header struct {
		Alg string `json:"alg"`
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(h, &header) != nil || !slices.Contains(tokenAlgorithms, jose.SignatureAlgorithm(header.Alg)) {
		t.Fatalf("accepted a token whose header %q names no accepted algorithm", h)
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("accepted a token whose payload is not base64url: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatalf("accepted a payload that is not a JSON object: %v", err)
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	if c.Issuer == "" || c.Issuer != str("iss") || c.Subject != str("sub") || c.Email != str("email") {
		t.Fatalf("claims iss %q sub %q email %q; the payload says %q %q %q", c.Issuer, c.Subject, c.Email, m["iss"], m["sub"], m["email"])
	}
	if c.Subject == "" && c.Email == "" {
		t.Fatal("accepted a token with neither sub nor email")
	}
	if v := m["email_verified"]; c.EmailVerified != (v == true || v == "true") {
		t.Fatalf("email_verified %v read as %v", v, c.EmailVerified)
	}
	var aud []string
	switch a := m["aud"].(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				t.Fatalf("accepted an audience holding %v", e)
			}
			aud = append(aud, s)
		}
	}
	if !slices.Equal(aud, c.Audience) {
		t.Fatalf("audience %q; the payload says %v", c.Audience, m["aud"])
	}
	switch e := m["exp"].(type) {
	case float64:
		if !c.Expiry.Equal(time.Unix(int64(e), 0)) {
			t.Fatalf("expiry %s; the payload says %v", c.Expiry, e)
		}
	case nil:
		if !c.Expiry.IsZero() {
			t.Fatalf("expiry %s for a token without exp", c.Expiry)
		}
	default:
		t.Fatalf("accepted exp %v", e)
	}
}

func checkProofSubject(t *testing.T, c Claims) {
	t.Helper()
	s, err := c.ProofSubject()
	switch {
	case c.Email != "" && c.EmailVerified:
		if err != nil || s != c.Email {
			t.Fatalf("proof subject %q, %v for a verified email %q", s, err, c.Email)
		}
	case c.Email != "":
		if err == nil {
			t.Fatalf("proof subject %q for an unverified email", s)
		}
	case err != nil || s != c.Subject:
		t.Fatalf("proof subject %q, %v for subject %q", s, err, c.Subject)
	}
	if !strings.Contains(c.Identity(), c.Issuer) {
		t.Fatalf("identity %q does not name the issuer %q", c.Identity(), c.Issuer)
	}
}

// remint is the claims as a token payload.
func remint(c Claims) map[string]any {
	m := map[string]any{"iss": c.Issuer, "email_verified": c.EmailVerified}
	if c.Subject != "" {
		m["sub"] = c.Subject
	}
	if c.Email != "" {
		m["email"] = c.Email
	}
	if c.Audience != nil {
		m["aud"] = c.Audience
	}
	if !c.Expiry.IsZero() {
		m["exp"] = c.Expiry.Unix()
	}
	return m
}

func sameClaims(a, b Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && a.Email == b.Email && a.EmailVerified == b.EmailVerified &&
		slices.Equal(a.Audience, b.Audience) && a.Expiry.Equal(b.Expiry)
}
