// Package tsa is an RFC 3161 timestamp authority client: it asks for a
// signed timestamp over a signature, as Sigstore bundles carry it.
package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/signet-dev/signet/core/sign/transport"
)

// Client talks to one timestamp authority.
type Client struct {
	url     string
	http    *http.Client
	service string
}

// New returns a client for the TSA endpoint URL, as signing_config.json
// lists it (the full path, e.g. https://timestamp.example/api/v1/timestamp).
func New(endpoint string, hc *http.Client) (*Client, error) {
	if err := transport.CheckURL("timestamp authority", endpoint); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	return &Client{url: endpoint, http: hc, service: "timestamp authority (" + endpoint + ")"}, nil
}

// URL is the endpoint URL.
func (c *Client) URL() string { return c.url }

// Timestamp is a signed timestamp response.
type Timestamp struct {
	// Response is the DER TimeStampResp, what a bundle's
	// rfc3161Timestamps[].signedTimestamp holds.
	Response []byte
	Time     time.Time
}

// maxAnswer bounds the response: a token with its chain is a few KiB.
const maxAnswer = 256 << 10

// Timestamp asks for a timestamp over SHA-256(signature) with a random
// nonce, and checks that the answer is for that digest and nonce.
func (c *Client) Timestamp(ctx context.Context, signature []byte) (*Timestamp, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	h := crypto.SHA256.New()
	h.Write(signature)
	digest := h.Sum(nil)
	query := &timestamp.Request{
		HashAlgorithm: crypto.SHA256,
		HashedMessage: digest,
		Nonce:         nonce,
		// Ask for the TSA certificate so the token is self-contained.
		Certificates: true,
	}
	body, err := query.Marshal()
	if err != nil {
		return nil, fmt.Errorf("building the RFC 3161 query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	req.Header.Set("Accept", "application/timestamp-reply")
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
	ts, err := timestamp.ParseResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: the answer is not a granted RFC 3161 timestamp response: %v", c.service, err)
	}
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, digest) {
		return nil, fmt.Errorf("%s: the timestamp is over a different message than the one sent", c.service)
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, fmt.Errorf("%s: the timestamp's nonce %v does not match the request's %v (a replayed or misrouted answer)", c.service, ts.Nonce, nonce)
	}
	return &Timestamp{Response: raw, Time: ts.Time}, nil
}
