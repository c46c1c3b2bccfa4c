package buildpack

import (
	"context"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/core/oci"
)

// Registry is the registry access Read needs: resolving tags, listing an
// index's platforms (both *oci.Client), and reading an image's config and
// SBOM layer, which core/oci has no call for yet. Once oci.Client has
// Image, an *oci.Client is a Registry and NewRegistry can go.
type Registry interface {
	Resolve(ctx context.Context, reference string) (*oci.Subject, error)
	Platforms(ctx context.Context, s *oci.Subject) ([]*oci.Subject, error)
	Image(ctx context.Context, s *oci.Subject) (v1.Image, error)
}

// NewRegistry is c, with images read through go-containerregistry under the
// options c was made with (o): the same credentials, and the same refusal of
// plain HTTP off loopback.
func NewRegistry(c *oci.Client, o oci.Options) Registry {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(kc), remote.WithTransport(&plainHTTPPolicy{base: base, allow: o.AllowInsecureRegistry})}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return &registry{Client: c, opts: opts}
}

type registry struct {
	*oci.Client
	opts []remote.Option
}

func (r *registry) Image(ctx context.Context, s *oci.Subject) (v1.Image, error) {
	return remote.Image(s.Digest, append(r.opts, remote.WithContext(ctx))...)
}

// plainHTTPPolicy is core/oci's rule: go-containerregistry would otherwise
// use plain HTTP for private-range addresses without being asked.
type plainHTTPPolicy struct {
	base  http.RoundTripper
	allow bool
}

func (p *plainHTTPPolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.allow && !oci.IsLoopback(req.URL.Host) {
		return nil, &oci.InsecureRegistryError{Registry: req.URL.Host}
	}
	return p.base.RoundTrip(req)
}
