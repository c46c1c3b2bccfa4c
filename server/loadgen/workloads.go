package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/digitorus/timestamp"
)

// Workload is a prepared request source plus its response check.
type Workload struct {
	Name  string
	Next  func(c, i int) Request
	Check func(status int, body []byte) error
}

// DevToken asks the server's development issuer for a token, the way a
// GitHub Actions runner asks for one.
func DevToken(ctx context.Context, server, requestToken string, params url.Values) (string, error) {
	if params == nil {
		params = url.Values{}
	}
	if params.Get("audience") == "" {
		params.Set("audience", "sigstore")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/dev/oidc/token?"+params.Encode(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+requestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("development issuer: HTTP %d: %s (is the server running with --dev-oidc, and is the request token right?)", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Value == "" {
		return "", fmt.Errorf("development issuer: unexpected answer %q", b)
	}
	return out.Value, nil
}

// tokenSubject reads the sub claim the proof of possession must sign. The
// server verifies the token; the client only needs the claim.
func tokenSubject(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	if claims.Email != "" {
		return claims.Email, nil
	}
	return claims.Sub, nil
}

type signingCertRequest struct {
	Credentials struct {
		OIDCIdentityToken string `json:"oidcIdentityToken"`
	} `json:"credentials"`
	PublicKeyRequest struct {
		PublicKey struct {
			Algorithm string `json:"algorithm"`
			Content   string `json:"content"`
		} `json:"publicKey"`
		ProofOfPossession []byte `json:"proofOfPossession"`
	} `json:"publicKeyRequest"`
}

// signingCertBody builds a Fulcio v2 CreateSigningCertificateRequest for key.
func signingCertBody(tok string, key *ecdsa.PrivateKey) ([]byte, error) {
	sub, err := tokenSubject(tok)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(sub))
	pop, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	var r signingCertRequest
	r.Credentials.OIDCIdentityToken = tok
	r.PublicKeyRequest.PublicKey.Algorithm = "ECDSA"
	r.PublicKeyRequest.PublicKey.Content = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	r.PublicKeyRequest.ProofOfPossession = pop
	return json.Marshal(r)
}

// CertificateChain asks the CA for a certificate for key and returns it.
func CertificateChain(ctx context.Context, server, tok string, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	body, err := signingCertBody(tok, key)
	if err != nil {
		return nil, err
	}
	status, resp, err := post(ctx, http.DefaultClient, server+"/api/v2/signingCert", "application/json", body)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	return parseSigningCert(status, resp)
}

func parseSigningCert(status int, body []byte) (*x509.Certificate, error) {
	var out struct {
		Detached *struct {
			Chain struct {
				Certificates []string `json:"certificates"`
			} `json:"chain"`
		} `json:"signedCertificateDetachedSct"`
		Embedded *struct {
			Chain struct {
				Certificates []string `json:"certificates"`
			} `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("CA answer: %w", err)
	}
	var certs []string
	switch {
	case out.Detached != nil:
		certs = out.Detached.Chain.Certificates
	case out.Embedded != nil:
		certs = out.Embedded.Chain.Certificates
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("CA answer (HTTP %d) has no certificate chain", status)
	}
	block, _ := pem.Decode([]byte(certs[0]))
	if block == nil {
		return nil, errors.New("CA answer: leaf is not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// CA prepares certificate requests. With tokens == 0 each client reuses one
// token; otherwise tokens distinct tokens (one identity, distinct jti) are
// minted up front and used round-robin, the way CI jobs each bring a fresh
// token, so no server-side token cache can short-cut verification.
func CA(ctx context.Context, server, requestToken string, clients, tokens int) (*Workload, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	n := tokens
	if n == 0 {
		n = clients
	}
	bodies := make([][]byte, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     atomicCounter
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.inc())
				if i >= n {
					return
				}
				params := url.Values{"kind": {"github"}, "repository": {"bench/repo"}}
				if tokens == 0 {
					params.Set("repository", fmt.Sprintf("bench/repo-%d", i))
				}
				tok, err := DevToken(ctx, server, requestToken, params)
				var body []byte
				if err == nil {
					body, err = signingCertBody(tok, key)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
				bodies[i] = body
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	var rr atomicCounter
	return &Workload{
		Name: "ca",
		Next: func(c, i int) Request {
			b := bodies[c%len(bodies)]
			if tokens > 0 {
				b = bodies[rr.inc()%uint64(len(bodies))]
			}
			return Request{Path: "/api/v2/signingCert", ContentType: "application/json", Body: b}
		},
		Check: checkSigningCert,
	}, nil
}

// checkSigningCert confirms an answer carries a PEM certificate chain without
// parsing the certificates: the load generator shares the machine with the
// server, and the tests check certificate contents elsewhere.
func checkSigningCert(status int, body []byte) error {
	if !bytes.Contains(body, []byte(`"chain"`)) || !bytes.Contains(body, []byte("BEGIN CERTIFICATE")) {
		return fmt.Errorf("CA answer (HTTP %d) carries no certificate chain: %.200s", status, body)
	}
	return nil
}

// Log prepares n distinct hashedrekord v0.0.2 entries signed by one
// certified key; every request appends one entry and waits for its proof.
// The certificate is for a token from the development issuer.
func Log(ctx context.Context, server, requestToken string, n int, progress func(done int)) (*Workload, error) {
	tok, err := DevToken(ctx, server, requestToken, url.Values{"kind": {"github"}, "repository": {"bench/log"}})
	if err != nil {
		return nil, err
	}
	return LogWithToken(ctx, server, tok, n, progress)
}

// LogWithToken is Log with the certificate for an identity token of any
// issuer the server trusts (a server without the development issuer).
func LogWithToken(ctx context.Context, server, tok string, n int, progress func(done int)) (*Workload, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := CertificateChain(ctx, server, tok, key)
	if err != nil {
		return nil, err
	}
	bodies := make([][]byte, n)
	for i := range bodies {
		digest := make([]byte, 32)
		if _, err := rand.Read(digest); err != nil {
			return nil, err
		}
		sig, err := key.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			return nil, err
		}
		bodies[i], err = json.Marshal(map[string]any{
			"hashedRekordRequestV002": map[string]any{
				"digest": digest,
				"signature": map[string]any{
					"content": sig,
					"verifier": map[string]any{
						"x509Certificate": map[string]any{"rawBytes": cert.Raw},
						"keyDetails":      "PKIX_ECDSA_P256_SHA_256",
					},
				},
			},
		})
		if err != nil {
			return nil, err
		}
		if progress != nil && i%10000 == 9999 {
			progress(i + 1)
		}
	}
	var next atomicCounter
	return &Workload{
		Name: "log",
		Next: func(c, i int) Request {
			return Request{Path: "/api/v2/log/entries", ContentType: "application/json", Body: bodies[next.inc()%uint64(len(bodies))]}
		},
		Check: checkLogEntry,
	}, nil
}

// checkLogEntry insists on what makes an entry useful to a verifier: an
// inclusion proof and a checkpoint that covers it.
func checkLogEntry(status int, body []byte) error {
	var tle struct {
		LogIndex       string `json:"logIndex"`
		InclusionProof *struct {
			TreeSize   string `json:"treeSize"`
			Checkpoint struct {
				Envelope string `json:"envelope"`
			} `json:"checkpoint"`
		} `json:"inclusionProof"`
	}
	if err := json.Unmarshal(body, &tle); err != nil {
		return fmt.Errorf("log answer: %w", err)
	}
	if tle.InclusionProof == nil || tle.InclusionProof.Checkpoint.Envelope == "" {
		return errors.New("log answer carries no inclusion proof with checkpoint")
	}
	return nil
}

// TSA prepares timestamp queries over random digests.
func TSA(n int) (*Workload, error) {
	bodies := make([][]byte, n)
	for i := range bodies {
		digest := make([]byte, 32)
		if _, err := rand.Read(digest); err != nil {
			return nil, err
		}
		q, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Certificates: true}).Marshal()
		if err != nil {
			return nil, err
		}
		bodies[i] = q
	}
	var next atomicCounter
	return &Workload{
		Name: "tsa",
		Next: func(c, i int) Request {
			return Request{Path: "/api/v1/timestamp", ContentType: "application/timestamp-query", Body: bodies[next.inc()%uint64(len(bodies))]}
		},
		Check: func(status int, body []byte) error {
			_, err := timestamp.ParseResponse(body)
			return err
		},
	}, nil
}
