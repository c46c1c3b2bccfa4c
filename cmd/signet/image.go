package main

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/core/oci"
)

// registryFlags are the flags every image command shares.
type registryFlags struct {
	allowInsecure bool
}

func (r *registryFlags) add(f *pflag.FlagSet) {
	f.BoolVar(&r.allowInsecure, "allow-insecure-registry", false, "allow plain HTTP to registries that are not on loopback (loopback registries always may use it)")
}

// client is an OCI client with the default keychain: docker config.json and
// credential helpers, as `docker login` leaves them.
func (r *registryFlags) client() *oci.Client {
	return oci.New(oci.Options{AllowInsecureRegistry: r.allowInsecure, UserAgent: "signet/" + version})
}

const registryHelp = `
Registry credentials come from the docker config ($DOCKER_CONFIG/config.json
or ~/.docker/config.json, as 'docker login' writes it) and the credential
helpers it names. Registries on loopback are reached over plain HTTP; any
other registry needs HTTPS unless --allow-insecure-registry is given.`

// resolveImage resolves IMAGE once and, with recursive, adds each platform
// manifest of a multi-platform index after the index itself. A wrong
// reference is a usage error; a missing image or refused pull is exit 1.
func resolveImage(ctx context.Context, c *oci.Client, image string, recursive bool) ([]*oci.Subject, error) {
	if _, err := c.ParseReference(image); err != nil {
		return nil, usageError{fmt.Errorf("IMAGE: %w", err)}
	}
	s, err := c.Resolve(ctx, image)
	if err != nil {
		return nil, err
	}
	out := []*oci.Subject{s}
	if !recursive {
		return out, nil
	}
	platforms, err := c.Platforms(ctx, s)
	if err != nil {
		return nil, err
	}
	return append(out, platforms...), nil
}

// platformString is os/arch[/variant], or "" for a subject not reached
// through an index.
func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// describe names a subject for progress lines: the digest, and the
// platform when there is one.
func describe(s *oci.Subject) string {
	if p := platformString(s.Platform); p != "" {
		return s.Digest.String() + " (" + p + ")"
	}
	return s.Digest.String()
}

// recursiveNote tells the user, on stderr, that an index was signed alone
// although it has platform manifests, which verifiers that resolve a
// platform (docker pull, Kubernetes) check instead of the index.
func recursiveNote(ctx context.Context, w io.Writer, c *oci.Client, s *oci.Subject, verb, done string) {
	if !s.IsIndex() {
		return
	}
	if ps, err := c.Platforms(ctx, s); err == nil && len(ps) > 0 {
		fmt.Fprintf(w, "note: %s is a multi-platform index of %d platform manifests; only the index was %s — pass -r to %s each platform too\n", s.Reference, len(ps), done, verb)
	}
}
