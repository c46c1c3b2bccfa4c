package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/trust"
)

// serverEnv names the signet server when --server is not given.
const serverEnv = "SIGNET_SERVER"

// tufRootEnv names a pinned TUF root (the server's /tuf/root.json, obtained
// out of band): with it, whatever a command fetches from --server comes
// through the server's TUF repository, verified from that root.
const tufRootEnv = "SIGNET_TUF_ROOT"

// trustHelpSign and trustHelpVerify document where trust comes from; they
// end every signing and verifying command's Long help.
const trustHelpSign = `
Where the services come from (first that applies):
  1. --signing-config FILE   a standard signing_config.json (v0.2): the CA,
                             transparency logs and timestamp authorities
  2. --server URL            a signet server's published signing config
                             (through its TUF repository with $SIGNET_TUF_ROOT)
  3. $SIGNET_SERVER          as --server
With --server, attestations are also kept in the server's attestation store
(searchable with 'signet log search').`

const trustHelpVerify = `
Where the trust comes from (first that applies):
  1. --trusted-root FILE     a standard trusted_root.json; nothing is fetched,
                             verification is fully offline
  2. --server URL            fetch the server's trusted_root.json now (trust on
                             first use: pin it with 'signet trust' instead),
                             through its TUF repository when $SIGNET_TUF_ROOT
                             names a pinned TUF root
  3. $SIGNET_SERVER          as --server`

// trustSource holds the flags that say where trust material comes from.
type trustSource struct {
	trustedRoot   string
	signingConfig string
	server        string
}

func (t *trustSource) addServer(f *pflag.FlagSet) {
	f.StringVar(&t.server, "server", "", "signet server URL to fetch trust files from (default $"+serverEnv+")")
}

func (t *trustSource) addTrustedRoot(f *pflag.FlagSet) {
	f.StringVar(&t.trustedRoot, "trusted-root", "", "trusted_root.json to verify against, offline (wins over --server)")
}

func (t *trustSource) addSigningConfig(f *pflag.FlagSet) {
	f.StringVar(&t.signingConfig, "signing-config", "", "signing_config.json naming the CA, logs and TSAs to sign with (wins over --server)")
}

// serverURL is --server or $SIGNET_SERVER, checked, without a trailing slash;
// "" when neither is set.
func (t *trustSource) serverURL() (string, error) {
	s, from := t.server, "--server"
	if s == "" {
		s, from = os.Getenv(serverEnv), "$"+serverEnv
	}
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError{fmt.Errorf("%s %q is not an http(s) URL; give the server's base URL, e.g. https://signet.example.com", from, s)}
	}
	return strings.TrimRight(s, "/"), nil
}

// loadedRoot is a trusted root and where it came from.
type loadedRoot struct {
	Root   *trust.Root
	JSON   []byte
	Source string // the file, or the URL it was fetched from
}

// root loads the trusted root following the documented precedence. Fetching
// it from a server is announced on stderr because it trusts the network.
func (t *trustSource) root(ctx context.Context, hc *http.Client, stderr io.Writer) (*loadedRoot, error) {
	if t.trustedRoot != "" {
		raw, err := os.ReadFile(t.trustedRoot)
		if err != nil {
			return nil, usageError{fmt.Errorf("--trusted-root: %v", err)}
		}
		r, err := trust.ParseRoot(raw)
		if err != nil {
			return nil, fmt.Errorf("--trusted-root %s: %w", t.trustedRoot, err)
		}
		return &loadedRoot{Root: r, JSON: raw, Source: t.trustedRoot}, nil
	}
	srv, err := t.serverURL()
	if err != nil {
		return nil, err
	}
	if srv == "" {
		return nil, usageError{fmt.Errorf("no trusted root: pass --trusted-root FILE (offline), or --server URL / $%s to fetch one", serverEnv)}
	}
	if raw, err := overTUF(srv, hc, trust.TUFTrustedRootTarget); raw != nil || err != nil {
		if err != nil {
			return nil, err
		}
		r, err := trust.ParseRoot(raw)
		if err != nil {
			return nil, fmt.Errorf("%s/tuf %s: %w", srv, trust.TUFTrustedRootTarget, err)
		}
		return &loadedRoot{Root: r, JSON: raw, Source: srv + "/tuf/" + trust.TUFTrustedRootTarget}, nil
	}
	raw, err := sign.FetchTrustFile(ctx, srv, sign.TrustedRootPath, hc)
	if err != nil {
		return nil, err
	}
	r, err := trust.ParseRoot(raw)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", srv, sign.TrustedRootPath, err)
	}
	fmt.Fprintf(stderr, "note: using the trusted root served by %s now, as the network delivered it; pin it with 'signet trust --server %s' and pass --trusted-root, or set $%s to its TUF root\n", srv, srv, tufRootEnv)
	return &loadedRoot{Root: r, JSON: raw, Source: srv + sign.TrustedRootPath}, nil
}

// services picks the signing services following the documented precedence.
// With a server known (flag or environment), its attestation store is
// attached even when a signing config chose the other services.
func (t *trustSource) services(ctx context.Context, hc *http.Client, now time.Time) (*sign.Services, error) {
	srv, err := t.serverURL()
	if err != nil {
		return nil, err
	}
	if t.signingConfig != "" {
		sc, err := trust.ReadSigningConfigFile(t.signingConfig)
		if err != nil {
			return nil, usageError{fmt.Errorf("--signing-config: %w", err)}
		}
		s, err := sign.FromSigningConfig(sc, hc, now)
		if err != nil {
			return nil, fmt.Errorf("--signing-config %s: %w", t.signingConfig, err)
		}
		if t.server != "" {
			if s.Attestations, err = rekor.NewAttestationStore(srv, hc); err != nil {
				return nil, usageError{fmt.Errorf("--server: %w", err)}
			}
		}
		return s, nil
	}
	if srv == "" {
		return nil, usageError{fmt.Errorf("no signing services: pass --signing-config FILE, or --server URL / $%s", serverEnv)}
	}
	if raw, err := overTUF(srv, hc, trust.TUFSigningConfigTarget); raw != nil || err != nil {
		if err != nil {
			return nil, err
		}
		sc, err := trust.ParseSigningConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("%s/tuf %s: %w", srv, trust.TUFSigningConfigTarget, err)
		}
		s, err := sign.FromSigningConfig(sc, hc, now)
		if err != nil {
			return nil, fmt.Errorf("%s/tuf %s: %w", srv, trust.TUFSigningConfigTarget, err)
		}
		if s.Attestations, err = rekor.NewAttestationStore(srv, hc); err != nil {
			return nil, usageError{fmt.Errorf("--server: %w", err)}
		}
		return s, nil
	}
	return sign.FromServer(ctx, srv, hc, now)
}

// overTUF fetches target from srv's TUF repository when $SIGNET_TUF_ROOT
// pins a root; (nil, nil) when it does not.
func overTUF(srv string, hc *http.Client, target string) ([]byte, error) {
	path := os.Getenv(tufRootEnv)
	if path == "" {
		return nil, nil
	}
	pinned, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("$%s: %v", tufRootEnv, err)}
	}
	got, err := trust.FetchOverTUF(srv+"/tuf", pinned, hc, target)
	if err != nil {
		return nil, fmt.Errorf("%w; $%s (%s) must be the TUF root the operator published for %s", err, tufRootEnv, path, srv)
	}
	return got[target], nil
}

// httpClient is the client every command shares: one connection pool,
// bounded retries and signet's User-Agent.
func httpClient() *http.Client {
	return transport.NewClient(transport.Options{})
}
