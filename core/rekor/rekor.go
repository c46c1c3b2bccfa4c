// Package rekor holds clients for transparency logs: a Rekor v2 log (create
// hashedrekord v0.0.2 entries, read the checkpoint) and signet's attestation
// store, which keeps DSSE envelopes and logs the same entry for them.
package rekor

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/formats/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/sign/transport"
)

// Client talks to one Rekor v2 log.
type Client struct {
	base    string
	http    *http.Client
	service string
}

func checkURL(what, raw string) (string, error) {
	if err := transport.CheckURL(what, raw); err != nil {
		return "", err
	}
	return strings.TrimRight(raw, "/"), nil
}

// New returns a client for the log at baseURL, as signing_config.json lists
// it (e.g. https://log2025-1.rekor.sigstore.dev).
func New(baseURL string, hc *http.Client) (*Client, error) {
	base, err := checkURL("transparency log", baseURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	return &Client{base: base, http: hc, service: "transparency log (" + base + ")"}, nil
}

// URL is the log's base URL.
func (c *Client) URL() string { return c.base }

// Verifier describes the key that checks a logged signature: a certificate
// (keyless) or a public key, both DER.
func Verifier(certDER, publicKeyDER []byte, details protocommon.PublicKeyDetails) *rekorv2.Verifier {
	v := &rekorv2.Verifier{KeyDetails: details}
	if certDER != nil {
		v.Verifier = &rekorv2.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: certDER}}
	} else {
		v.Verifier = &rekorv2.Verifier_PublicKey{PublicKey: &rekorv2.PublicKey{RawBytes: publicKeyDER}}
	}
	return v
}

// Entries are small; a larger answer is not a log entry.
const maxAnswer = 4 << 20

// Rekor v2 answers with every field; fields newer than this build are
// ignored rather than failing a signature that was already logged.
var answerJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

// CreateHashedRekord logs a signature over digest (the artifact's digest, or
// the DSSE PAE's) and returns the entry with its inclusion proof and
// checkpoint, ready for a bundle.
func (c *Client) CreateHashedRekord(ctx context.Context, digest, signature []byte, verifier *rekorv2.Verifier) (*protorekor.TransparencyLogEntry, error) {
	body, err := protojson.Marshal(&rekorv2.CreateEntryRequest{
		Spec: &rekorv2.CreateEntryRequest_HashedRekordRequestV002{
			HashedRekordRequestV002: &rekorv2.HashedRekordRequestV002{
				Digest:    digest,
				Signature: &rekorv2.Signature{Content: signature, Verifier: verifier},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v2/log/entries", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, transport.ErrorFrom(c.service, resp)
	}
	raw, err := transport.ReadBody(c.service, resp, maxAnswer)
	if err != nil {
		return nil, err
	}
	return parseEntry(c.service, raw)
}

func parseEntry(service string, raw []byte) (*protorekor.TransparencyLogEntry, error) {
	var tle protorekor.TransparencyLogEntry
	if err := answerJSON.Unmarshal(raw, &tle); err != nil {
		return nil, fmt.Errorf("%s: the answer is not a TransparencyLogEntry: %v", service, err)
	}
	switch {
	case len(tle.GetLogId().GetKeyId()) == 0:
		return nil, fmt.Errorf("%s: the entry has no logId", service)
	case tle.GetKindVersion().GetKind() != "hashedrekord" || tle.GetKindVersion().GetVersion() != "0.0.2":
		return nil, fmt.Errorf("%s: the entry is of kind %s %s, expected hashedrekord 0.0.2", service, tle.GetKindVersion().GetKind(), tle.GetKindVersion().GetVersion())
	case len(tle.GetCanonicalizedBody()) == 0:
		return nil, fmt.Errorf("%s: the entry has no canonicalizedBody", service)
	case tle.GetInclusionProof() == nil || tle.GetInclusionProof().GetCheckpoint().GetEnvelope() == "":
		return nil, fmt.Errorf("%s: the entry has no inclusion proof with a checkpoint; signet needs a Rekor v2 log", service)
	}
	return &tle, nil
}

// Checkpoint is a log checkpoint as served, with its body parsed. The
// signature is NOT verified here; verification checks it against the
// trusted root's log key.
type Checkpoint struct {
	log.Checkpoint
	// Note is the whole signed note (C2SP signed-note).
	Note []byte
}

// Checkpoint reads the log's latest checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v2/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, transport.ErrorFrom(c.service, resp)
	}
	raw, err := transport.ReadBody(c.service, resp, 64<<10)
	if err != nil {
		return nil, err
	}
	cp := &Checkpoint{Note: raw}
	if _, err := cp.Checkpoint.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("%s: checkpoint: %v", c.service, err)
	}
	return cp, nil
}
