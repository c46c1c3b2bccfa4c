package sign

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/signet-dev/signet/core/fulcio"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/tsa"
)

// API versions signet's clients speak.
const (
	caAPIVersion    = 1 // Fulcio: signing_config lists its v2 JSON API as major version 1
	rekorAPIVersion = 2
	tsaAPIVersion   = 1
)

// CertificateAuthority issues a short-lived certificate for an identity
// token and a key (Fulcio v2: core/fulcio).
type CertificateAuthority interface {
	URL() string
	CreateSigningCertificate(ctx context.Context, idToken string, key *signer.Signer) (*fulcio.Certificate, error)
}

// Log appends a hashedrekord entry and returns it with its inclusion proof
// (Rekor v2: core/rekor).
type Log interface {
	URL() string
	CreateHashedRekord(ctx context.Context, digest, signature []byte, verifier *rekorv2.Verifier) (*protorekor.TransparencyLogEntry, error)
}

// TimestampAuthority countersigns a signature (RFC 3161: core/tsa).
type TimestampAuthority interface {
	URL() string
	Timestamp(ctx context.Context, signature []byte) (*tsa.Timestamp, error)
}

// AttestationStore keeps a DSSE envelope and logs it, returning the
// attestation's ID and log entry (a signet server: core/rekor).
type AttestationStore interface {
	URL() string
	Submit(ctx context.Context, env *protodsse.Envelope, verifier *rekorv2.Verifier) (string, *protorekor.TransparencyLogEntry, error)
}

// Services are the endpoints a signature is made with. Each is a small
// interface, so a plugin can bring its own and tests can use fakes.
type Services struct {
	// CA issues certificates; nil when signing with a self-managed key only.
	CA CertificateAuthority
	// Logs are candidate transparency logs in order of preference, and
	// LogsNeeded how many of them must log the signature (the selector).
	Logs       []Log
	LogsNeeded int
	// TSAs and TSAsNeeded likewise for timestamp authorities.
	TSAs       []TimestampAuthority
	TSAsNeeded int
	// Attestations is a signet server's attestation store, set by
	// FromServer; attestations can be logged through it instead of Logs.
	Attestations AttestationStore
}

// FromSigningConfig picks the services of a signing_config.json valid at
// now: the newest supported CA, and the logs and TSAs its selectors ask for
// (ALL: every valid one; ANY: one, falling back to the next on failure;
// EXACT n: n of them).
func FromSigningConfig(sc *trust.SigningConfig, hc *http.Client, now time.Time) (*Services, error) {
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	s := &Services{}
	if len(sc.CAs) > 0 {
		cas, err := trust.Select(sc.CAs, now, caAPIVersion)
		if err != nil {
			return nil, fmt.Errorf("signing config: certificate authority: %w (signet speaks the Fulcio v2 API, majorApiVersion 1)", err)
		}
		ca, err := fulcio.New(cas[0].URL, hc)
		if err != nil {
			return nil, fmt.Errorf("signing config: %w", err)
		}
		s.CA = ca
	}
	if len(sc.RekorLogs) > 0 {
		logs, err := trust.Select(sc.RekorLogs, now, rekorAPIVersion)
		if err != nil {
			return nil, fmt.Errorf("signing config: transparency log: %w (signet writes to Rekor v2 logs, majorApiVersion 2)", err)
		}
		if s.LogsNeeded, err = needed("rekorTlogConfig", sc.RekorSelector, len(logs)); err != nil {
			return nil, err
		}
		for _, l := range logs {
			c, err := rekor.New(l.URL, hc)
			if err != nil {
				return nil, fmt.Errorf("signing config: %w", err)
			}
			s.Logs = append(s.Logs, c)
		}
	}
	if len(sc.TSAs) > 0 {
		tsas, err := trust.Select(sc.TSAs, now, tsaAPIVersion)
		if err != nil {
			return nil, fmt.Errorf("signing config: timestamp authority: %w", err)
		}
		if s.TSAsNeeded, err = needed("tsaConfig", sc.TSASelector, len(tsas)); err != nil {
			return nil, err
		}
		for _, t := range tsas {
			c, err := tsa.New(t.URL, hc)
			if err != nil {
				return nil, fmt.Errorf("signing config: %w", err)
			}
			s.TSAs = append(s.TSAs, c)
		}
	}
	return s, nil
}

func needed(field string, sel trust.Selector, valid int) (int, error) {
	switch sel.Mode {
	case "ALL":
		return valid, nil
	case "ANY", "":
		return 1, nil
	case "EXACT":
		if int(sel.Count) > valid {
			return 0, fmt.Errorf("signing config: %s asks for EXACT %d services but only %d are valid now; update signing_config.json", field, sel.Count, valid)
		}
		return int(sel.Count), nil
	}
	return 0, fmt.Errorf("signing config: %s selector %q is not ALL, ANY or EXACT", field, sel.Mode)
}

// Trust files a signet server publishes.
const (
	TrustedRootPath   = "/trust/trusted_root.json"
	SigningConfigPath = "/trust/signing_config.json"
)

// FetchTrustFile GETs one of a signet server's trust files.
func FetchTrustFile(ctx context.Context, serverURL, path string, hc *http.Client) ([]byte, error) {
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	u := strings.TrimRight(serverURL, "/") + path
	service := "signet server (" + serverURL + ")"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("signet server URL %q: %v", serverURL, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %w", path, transport.ErrorFrom(service, resp))
	}
	return transport.ReadBody(service, resp, 4<<20)
}

// FromServer reads a signet server's signing_config.json and returns its
// services, plus its attestation store.
func FromServer(ctx context.Context, serverURL string, hc *http.Client, now time.Time) (*Services, error) {
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	store, err := rekor.NewAttestationStore(serverURL, hc)
	if err != nil {
		return nil, fmt.Errorf("signet server: %w", err)
	}
	raw, err := FetchTrustFile(ctx, serverURL, SigningConfigPath, hc)
	if err != nil {
		return nil, err
	}
	sc, err := trust.ParseSigningConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", serverURL, SigningConfigPath, err)
	}
	s, err := FromSigningConfig(sc, hc, now)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", serverURL, SigningConfigPath, err)
	}
	s.Attestations = store
	return s, nil
}
