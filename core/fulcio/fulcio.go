// Package fulcio is a client for a Fulcio v2 certificate authority's JSON
// API (POST /api/v2/signingCert): it exchanges an OIDC identity token and a
// proof of possession of a key for a short-lived code-signing certificate.
package fulcio

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/token"
)

// Client talks to one Fulcio instance.
type Client struct {
	base    string
	http    *http.Client
	service string
}

// New returns a client for the CA at baseURL (e.g. https://fulcio.sigstore.dev).
func New(baseURL string, hc *http.Client) (*Client, error) {
	if err := transport.CheckURL("certificate authority", baseURL); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	base := strings.TrimRight(baseURL, "/")
	return &Client{base: base, http: hc, service: "certificate authority (" + base + ")"}, nil
}

// URL is the CA's base URL.
func (c *Client) URL() string { return c.base }

// The request and answer follow Fulcio's CreateSigningCertificateRequest and
// SigningCertificate messages in their grpc-gateway JSON form.
type createRequest struct {
	Credentials      credentials      `json:"credentials"`
	PublicKeyRequest publicKeyRequest `json:"publicKeyRequest"`
}

type credentials struct {
	OIDCIdentityToken string `json:"oidcIdentityToken"`
}

type publicKeyRequest struct {
	PublicKey publicKey `json:"publicKey"`
	// Protobuf bytes: standard base64 in JSON, as encoding/json writes []byte.
	ProofOfPossession []byte `json:"proofOfPossession"`
}

type publicKey struct {
	Algorithm string `json:"algorithm"`
	Content   string `json:"content"`
}

type chain struct {
	Certificates []string `json:"certificates"`
}

type signingCertificate struct {
	Embedded *struct {
		Chain chain `json:"chain"`
	} `json:"signedCertificateEmbeddedSct"`
	Detached *struct {
		Chain                      chain  `json:"chain"`
		SignedCertificateTimestamp []byte `json:"signedCertificateTimestamp"`
	} `json:"signedCertificateDetachedSct"`
}

// Certificate is an issued certificate with the chain that issued it.
type Certificate struct {
	Leaf *x509.Certificate
	// Chain holds the intermediates and root, leaf-most first, as the CA sent them.
	Chain []*x509.Certificate
	// DetachedSCT is set when the CA returned the SCT separately.
	DetachedSCT []byte
}

// maxAnswer bounds the CA's answer: a chain is a few KiB.
const maxAnswer = 1 << 20

// CreateSigningCertificate asks for a certificate for key, proving
// possession by signing the token's proof subject (token.Claims.ProofSubject).
func (c *Client) CreateSigningCertificate(ctx context.Context, idToken string, key *signer.Signer) (*Certificate, error) {
	claims, err := token.ParseClaims(idToken)
	if err != nil {
		return nil, fmt.Errorf("identity token: %w", err)
	}
	subject, err := claims.ProofSubject()
	if err != nil {
		return nil, fmt.Errorf("identity token: %w", err)
	}
	alg, err := key.FulcioAlgorithm()
	if err != nil {
		return nil, err
	}
	proof, err := key.SignMessage([]byte(subject))
	if err != nil {
		return nil, fmt.Errorf("proof of possession: %w", err)
	}
	pubPEM, err := key.PublicKeyPEM()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(createRequest{
		Credentials: credentials{OIDCIdentityToken: idToken},
		PublicKeyRequest: publicKeyRequest{
			PublicKey:         publicKey{Algorithm: alg, Content: string(pubPEM)},
			ProofOfPossession: proof,
		},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v2/signingCert", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	// Fulcio also reads the token from the Authorization header.
	req.Header.Set("Authorization", "Bearer "+idToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, transport.ErrorFrom(c.service, resp)
	}
	raw, err := transport.ReadBody(c.service, resp, maxAnswer)
	if err != nil {
		return nil, err
	}
	cert, err := parseAnswer(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.service, err)
	}
	if !samePublicKey(cert.Leaf, key) {
		return nil, fmt.Errorf("%s: the issued certificate is for a different public key than the one sent", c.service)
	}
	return cert, nil
}

func parseAnswer(raw []byte) (*Certificate, error) {
	var sc signingCertificate
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, fmt.Errorf("answer is not a SigningCertificate JSON object: %v", err)
	}
	var pems []string
	out := &Certificate{}
	switch {
	case sc.Embedded != nil && len(sc.Embedded.Chain.Certificates) > 0:
		pems = sc.Embedded.Chain.Certificates
	case sc.Detached != nil && len(sc.Detached.Chain.Certificates) > 0:
		pems = sc.Detached.Chain.Certificates
		out.DetachedSCT = sc.Detached.SignedCertificateTimestamp
	default:
		return nil, errors.New("answer holds no certificate chain (neither signedCertificateEmbeddedSct nor signedCertificateDetachedSct)")
	}
	for i, p := range pems {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("chain.certificates[%d] is not a PEM certificate", i)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("chain.certificates[%d]: %v", i, err)
		}
		if i == 0 {
			out.Leaf = cert
		} else {
			out.Chain = append(out.Chain, cert)
		}
	}
	return out, nil
}

func samePublicKey(cert *x509.Certificate, key *signer.Signer) bool {
	want, err := key.PublicKeyDER()
	if err != nil {
		return false
	}
	got, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	return err == nil && bytes.Equal(got, want)
}
