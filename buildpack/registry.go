package buildpack

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-dev/signet/core/oci"
)

// Registry is the registry access Read needs; an *oci.Client is one. Tests
// may wrap it to count or fail calls.
type Registry interface {
	Resolve(ctx context.Context, reference string) (*oci.Subject, error)
	Platforms(ctx context.Context, s *oci.Subject) ([]*oci.Subject, error)
	Image(ctx context.Context, s *oci.Subject) (v1.Image, error)
}

var _ Registry = (*oci.Client)(nil)
