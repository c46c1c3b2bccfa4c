// Package trust distributes the server's trust material in Sigstore's own
// formats: a TrustedRoot (trusted_root.json) naming the CA chain, the log key,
// the CT log key and the TSA chain, and a SigningConfig v0.2
// (signing_config.json) naming this server's CA, log and TSA URLs. With these
// two files standard clients (cosign v3 --trusted-root/--signing-config,
// sigstore-go, sigstore-js) sign and verify against signet with their default
// settings. A server run without a CT log lists none, and verifiers must then
// not require an SCT (cosign --insecure-ignore-sct).
package trust

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	trustpb "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// TrustedRootPath and SigningConfigPath are where the files are served.
	TrustedRootPath   = "/trust/trusted_root.json"
	SigningConfigPath = "/trust/signing_config.json"

	trustedRootMediaType   = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	signingConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

	// TimestampPath is the TSA endpoint named in the signing config.
	TimestampPath = "/api/v1/timestamp"
)

// Inputs is what the trust files are made of.
type Inputs struct {
	BaseURL string // public URL of this server, no trailing slash
	// LogURL is the log's URL in both files; default BaseURL. Sigstore
	// verifiers take the log's checkpoint origin from its host name.
	LogURL   string
	Operator string // shown to clients as the operator of each service

	CAChain []*x509.Certificate // issuing certificate first, root last
	// CAEnd ends CAChain's validity in trusted_root.json (a retired or
	// rotated-away CA); zero leaves it open.
	CAEnd time.Time
	// MoreCAs are the CA's other issuing chains (rotations, retired ones),
	// each with its validity period.
	MoreCAs []CA

	LogPublicKey ed25519.PublicKey
	LogID        []byte // the checkpoint key ID (Rekor v2)
	LogValidFrom time.Time
	// LogEnd ends the log's period (a rotated log key: the log is frozen
	// from then on); zero leaves it open. MoreLogs are the later shards.
	LogEnd   time.Time
	MoreLogs []Log

	TSAChain []*x509.Certificate // timestamping certificate first, root last
	// TSAEnd and MoreTSAs are CAEnd and MoreCAs for the TSA.
	TSAEnd   time.Time
	MoreTSAs []CA

	// CTLog is the certificate transparency log, nil for none.
	CTLog *CTLog
}

// CA is an issuing chain with the period it issues in.
type CA struct {
	Chain      []*x509.Certificate // issuing certificate first, root last
	Start, End time.Time           // End zero: open
}

// Log is a log shard: its URL (whose host name is its checkpoint origin),
// key and the period it takes entries in.
type Log struct {
	URL        string
	PublicKey  ed25519.PublicKey
	LogID      []byte
	Start, End time.Time // End zero: open
}

// CTLog is a certificate transparency log in trusted_root.json's ctlogs.
type CTLog struct {
	URL       string
	PublicKey []byte // DER SubjectPublicKeyInfo, ECDSA P-256
	LogID     []byte // SHA-256 of PublicKey (RFC 6962)
	ValidFrom time.Time
}

// Files are the rendered trust files.
type Files struct {
	TrustedRoot   []byte
	SigningConfig []byte
}

// Build renders both files. They change only when keys or the URL change,
// so they are built once at start and served from memory.
func Build(in Inputs) (*Files, error) {
	if in.BaseURL == "" {
		return nil, errors.New("trust: base URL is empty")
	}
	if len(in.CAChain) == 0 || len(in.TSAChain) == 0 {
		return nil, errors.New("trust: CA and TSA chains are required")
	}
	if len(in.LogPublicKey) != ed25519.PublicKeySize || len(in.LogID) == 0 {
		return nil, errors.New("trust: log key and log ID are required")
	}
	base := strings.TrimRight(in.BaseURL, "/")
	logURL := strings.TrimRight(in.LogURL, "/")
	if logURL == "" {
		logURL = base
	}
	caRoot := in.CAChain[len(in.CAChain)-1]
	tr := &trustpb.TrustedRoot{
		MediaType:              trustedRootMediaType,
		CertificateAuthorities: certificateAuthorities(base, in.Operator, append([]CA{{Chain: in.CAChain, Start: caRoot.NotBefore, End: in.CAEnd}}, in.MoreCAs...)),
		TimestampAuthorities:   certificateAuthorities(base+TimestampPath, in.Operator, append([]CA{{Chain: in.TSAChain, Start: in.TSAChain[0].NotBefore, End: in.TSAEnd}}, in.MoreTSAs...)),
	}

	logs := append([]Log{{URL: logURL, PublicKey: in.LogPublicKey, LogID: in.LogID, Start: in.LogValidFrom, End: in.LogEnd}}, in.MoreLogs...)
	sort.SliceStable(logs, func(i, j int) bool { return logs[i].Start.Before(logs[j].Start) })
	var tlogURLs []*trustpb.Service
	for _, l := range logs {
		der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("trust: log key of %s: %w", l.URL, err)
		}
		period := &commonpb.TimeRange{Start: timestamppb.New(l.Start)}
		if !l.End.IsZero() {
			period.End = timestamppb.New(l.End)
		}
		tr.Tlogs = append(tr.Tlogs, &trustpb.TransparencyLogInstance{
			BaseUrl:         strings.TrimRight(l.URL, "/"),
			HashAlgorithm:   commonpb.HashAlgorithm_SHA2_256,
			PublicKey:       &commonpb.PublicKey{RawBytes: der, KeyDetails: commonpb.PublicKeyDetails_PKIX_ED25519, ValidFor: period},
			LogId:           &commonpb.LogId{KeyId: l.LogID},
			CheckpointKeyId: &commonpb.LogId{KeyId: l.LogID},
			Operator:        in.Operator,
		})
		// Clients pick the log to write to by the current time; a shard
		// is offered while it takes entries.
		tlogURLs = append(tlogURLs, &trustpb.Service{Url: strings.TrimRight(l.URL, "/"), MajorApiVersion: 2, ValidFor: period, Operator: in.Operator})
	}

	if c := in.CTLog; c != nil {
		tr.Ctlogs = []*trustpb.TransparencyLogInstance{{
			BaseUrl:       c.URL,
			HashAlgorithm: commonpb.HashAlgorithm_SHA2_256,
			PublicKey: &commonpb.PublicKey{
				RawBytes:   c.PublicKey,
				KeyDetails: commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				ValidFor:   &commonpb.TimeRange{Start: timestamppb.New(c.ValidFrom)},
			},
			LogId:    &commonpb.LogId{KeyId: c.LogID},
			Operator: in.Operator,
		}}
	}

	// The services are valid from the moment their keys are.
	start := timestamppb.New(caRoot.NotBefore)
	sc := &trustpb.SigningConfig{
		MediaType:       signingConfigMediaType,
		CaUrls:          []*trustpb.Service{{Url: base, MajorApiVersion: 1, ValidFor: &commonpb.TimeRange{Start: start}, Operator: in.Operator}},
		RekorTlogUrls:   tlogURLs,
		RekorTlogConfig: &trustpb.ServiceConfiguration{Selector: trustpb.ServiceSelector_ANY},
		TsaUrls:         []*trustpb.Service{{Url: base + TimestampPath, MajorApiVersion: 1, ValidFor: &commonpb.TimeRange{Start: timestamppb.New(in.TSAChain[0].NotBefore)}, Operator: in.Operator}},
		TsaConfig:       &trustpb.ServiceConfiguration{Selector: trustpb.ServiceSelector_ANY},
	}

	opts := protojson.MarshalOptions{Multiline: true, Indent: "  "}
	trBytes, err := opts.Marshal(tr)
	if err != nil {
		return nil, fmt.Errorf("trust: trusted root: %w", err)
	}
	scBytes, err := opts.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("trust: signing config: %w", err)
	}
	return &Files{TrustedRoot: append(trBytes, '\n'), SigningConfig: append(scBytes, '\n')}, nil
}

// certificateAuthorities lists the CAs oldest first, as Sigstore's trusted
// roots do; a verifier accepts a certificate from a CA only for signatures
// made within its period.
func certificateAuthorities(base, operator string, cas []CA) []*trustpb.CertificateAuthority {
	sort.SliceStable(cas, func(i, j int) bool { return cas[i].Start.Before(cas[j].Start) })
	var out []*trustpb.CertificateAuthority
	for _, ca := range cas {
		tr := &commonpb.TimeRange{Start: timestamppb.New(ca.Start)}
		if !ca.End.IsZero() {
			tr.End = timestamppb.New(ca.End)
		}
		out = append(out, &trustpb.CertificateAuthority{
			Subject:   distinguishedName(ca.Chain[len(ca.Chain)-1]),
			Uri:       base,
			CertChain: chain(ca.Chain),
			ValidFor:  tr,
			Operator:  operator,
		})
	}
	return out
}

func distinguishedName(c *x509.Certificate) *commonpb.DistinguishedName {
	dn := &commonpb.DistinguishedName{CommonName: c.Subject.CommonName}
	if len(c.Subject.Organization) > 0 {
		dn.Organization = c.Subject.Organization[0]
	}
	return dn
}

func chain(certs []*x509.Certificate) *commonpb.X509CertificateChain {
	out := &commonpb.X509CertificateChain{}
	for _, c := range certs {
		out.Certificates = append(out.Certificates, &commonpb.X509Certificate{RawBytes: c.Raw})
	}
	return out
}

// Register serves the files.
func (f *Files) Register(mux *http.ServeMux) {
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET "+TrustedRootPath, serve(f.TrustedRoot))
	mux.HandleFunc("GET "+SigningConfigPath, serve(f.SigningConfig))
}
