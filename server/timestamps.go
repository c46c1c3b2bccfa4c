package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/timelog"
	"github.com/signet-dev/signet/server/tlog"
	"github.com/signet-dev/signet/server/tsa"
)

// timestampRecorder logs each timestamp token the TSA issues in the
// server's transparency log (time transparency, core/timelog) as a
// hashedrekord entry: the TSA's signature over the token's signed
// attributes, with its signing certificate.
func timestampRecorder(logs *tlog.Shards) (func(context.Context, []byte, *x509.Certificate, time.Time) ([]byte, error), error) {
	return func(ctx context.Context, resp []byte, leaf *x509.Certificate, at time.Time) ([]byte, error) {
		kd, err := signature.GetDefaultPublicKeyDetails(leaf.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("the TSA key cannot be logged: %w", err)
		}
		details, err := signature.GetAlgorithmDetails(kd)
		if err != nil {
			return nil, fmt.Errorf("the TSA key cannot be logged: %w", err)
		}
		parts, err := timelog.SignedParts(resp)
		if err != nil {
			return nil, err
		}
		if parts.Hash != details.GetHashType() {
			return nil, fmt.Errorf("the token's digest algorithm %v is not the %v the log checks %s signatures with", parts.Hash, details.GetHashType(), kd)
		}
		tle, err := logs.AppendHashedRekordAt(ctx, at, &rekorv2.HashedRekordRequestV002{
			Digest: parts.Digest,
			Signature: &rekorv2.Signature{
				Content:  parts.Signature,
				Verifier: &rekorv2.Verifier{Verifier: &rekorv2.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: leaf.Raw}}, KeyDetails: kd},
			},
		})
		switch {
		case errors.Is(err, tlog.ErrNotWitnessed):
			return nil, &tsa.RecordError{Why: "the log's witnesses have not cosigned a checkpoint covering it: they are unreachable or refuse", Err: err}
		case errors.Is(err, tlog.ErrStorageFull):
			return nil, &tsa.RecordError{Why: "the log's storage is full", Err: err}
		case errors.Is(err, tlog.ErrOverloaded):
			return nil, &tsa.RecordError{Why: "the log is overloaded", Err: err}
		case err != nil:
			return nil, err
		}
		return protojson.Marshal(tle)
	}, nil
}
