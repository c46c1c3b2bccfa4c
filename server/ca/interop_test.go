package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"net/http/httptest"
	"testing"

	"github.com/signet-dev/signet/core/certext"
	"github.com/sigstore/sigstore-go/pkg/sign"
)

// sigstore-go's own Fulcio client, unmodified, obtains certificates from this
// CA: proof that standard clients accept the API and its answers.
func TestSigstoreGoFulcioClient(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.mux)
	defer srv.Close()
	fulcio := sign.NewFulcio(&sign.FulcioOptions{BaseURL: srv.URL})

	tests := []struct {
		name   string
		claims map[string]any
		san    string
	}{
		{"email", map[string]any{"sub": "uid-7", "email": "dev@example.com", "email_verified": true}, "dev@example.com"},
		{"github", githubClaims(), "https://github.com/acme/widget/.github/workflows/release.yml@refs/tags/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := sign.NewEphemeralKeypair(nil)
			if err != nil {
				t.Fatal(err)
			}
			der, err := fulcio.GetCertificate(context.Background(), kp, &sign.CertificateProviderOptions{IDToken: f.tk.mint(t, tt.claims)})
			if err != nil {
				t.Fatalf("sigstore-go GetCertificate: %v", err)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if got := san(leaf); got != tt.san {
				t.Fatalf("SAN %s, want %s", got, tt.san)
			}
			if !kp.GetPublicKey().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Fatal("certificate is not for the client's key")
			}
			ext, err := certext.FromCertificate(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if ext.Issuer != autoIssuer || ext.Subject != tt.claims["sub"] {
				t.Fatalf("extensions %+v", ext)
			}
			if tt.name == "github" && (ext.BuildSignerURI != tt.san || ext.SourceRepositoryURI != "https://github.com/acme/widget") {
				t.Fatalf("extensions %+v", ext)
			}
		})
	}
}
