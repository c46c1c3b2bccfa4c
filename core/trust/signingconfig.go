package trust

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"time"

	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// SigningConfigMediaType is the only signing config version signet reads: v0.1
// lacks API versions and validity windows, which service selection needs.
const SigningConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

// Service is one service endpoint (CA, OIDC provider, Rekor or TSA).
type Service struct {
	URL             string
	MajorAPIVersion uint32
	ValidFor        TimeRange
	Operator        string
}

// Selector says how many services of a kind a client must use.
type Selector struct {
	// Mode is "ALL", "ANY" or "EXACT".
	Mode string
	// Count is the number of services for EXACT.
	Count uint32
}

// SigningConfig is a loaded signing_config.json (v0.2).
type SigningConfig struct {
	CAs           []Service
	OIDCProviders []Service
	RekorLogs     []Service
	RekorSelector Selector
	TSAs          []Service
	TSASelector   Selector
}

// ReadSigningConfigFile reads and parses a signing_config.json file.
func ReadSigningConfigFile(path string) (*SigningConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing config: %w", err)
	}
	sc, err := ParseSigningConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// ParseSigningConfig parses signing_config.json content (media type v0.2).
func ParseSigningConfig(data []byte) (*SigningConfig, error) {
	var pb prototrust.SigningConfig
	if err := protojson.Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("signing config: not a signing_config.json document: %v", err)
	}
	if pb.GetMediaType() != SigningConfigMediaType {
		return nil, fmt.Errorf("signing config: unsupported mediaType %q; expected %s", pb.GetMediaType(), SigningConfigMediaType)
	}
	sc := &SigningConfig{}
	var err error
	if sc.CAs, err = services("caUrls", pb.GetCaUrls()); err != nil {
		return nil, err
	}
	if sc.OIDCProviders, err = services("oidcUrls", pb.GetOidcUrls()); err != nil {
		return nil, err
	}
	if sc.RekorLogs, err = services("rekorTlogUrls", pb.GetRekorTlogUrls()); err != nil {
		return nil, err
	}
	if sc.TSAs, err = services("tsaUrls", pb.GetTsaUrls()); err != nil {
		return nil, err
	}
	if sc.RekorSelector, err = selector("rekorTlogConfig", pb.GetRekorTlogConfig(), len(sc.RekorLogs)); err != nil {
		return nil, err
	}
	if sc.TSASelector, err = selector("tsaConfig", pb.GetTsaConfig(), len(sc.TSAs)); err != nil {
		return nil, err
	}
	return sc, nil
}

func services(field string, pbs []*prototrust.Service) ([]Service, error) {
	out := make([]Service, 0, len(pbs))
	for i, s := range pbs {
		u, err := url.Parse(s.GetUrl())
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("signing config: %s[%d].url %q is not an http(s) URL", field, i, s.GetUrl())
		}
		if s.GetMajorApiVersion() == 0 {
			return nil, fmt.Errorf("signing config: %s[%d] (%s): majorApiVersion is missing", field, i, s.GetUrl())
		}
		vf, err := timeRange(s.GetValidFor())
		if err != nil {
			return nil, fmt.Errorf("signing config: %s[%d] (%s): %w", field, i, s.GetUrl(), err)
		}
		out = append(out, Service{URL: s.GetUrl(), MajorAPIVersion: s.GetMajorApiVersion(), ValidFor: vf, Operator: s.GetOperator()})
	}
	return out, nil
}

func selector(field string, pb *prototrust.ServiceConfiguration, n int) (Selector, error) {
	if pb == nil {
		if n == 0 {
			return Selector{}, nil
		}
		return Selector{}, fmt.Errorf("signing config: %s is missing but services are listed", field)
	}
	switch pb.GetSelector() {
	case prototrust.ServiceSelector_ALL:
		return Selector{Mode: "ALL"}, nil
	case prototrust.ServiceSelector_ANY:
		return Selector{Mode: "ANY"}, nil
	case prototrust.ServiceSelector_EXACT:
		if pb.GetCount() == 0 {
			return Selector{}, fmt.Errorf("signing config: %s.selector is EXACT but count is 0", field)
		}
		return Selector{Mode: "EXACT", Count: pb.GetCount()}, nil
	}
	return Selector{}, fmt.Errorf("signing config: %s.selector %s is not ALL, ANY or EXACT", field, pb.GetSelector())
}

// Select returns the services valid at t whose major API version is among
// supported, newest API version first and, within one version, the most
// recently started first — the order Sigstore clients prefer.
func Select(services []Service, t time.Time, supported ...uint32) ([]Service, error) {
	var out []Service
	for _, s := range services {
		if !s.ValidFor.Contains(t) {
			continue
		}
		for _, v := range supported {
			if s.MajorAPIVersion == v {
				out = append(out, s)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no service is valid now with a supported API version; update signing_config.json")
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].MajorAPIVersion != out[j].MajorAPIVersion {
			return out[i].MajorAPIVersion > out[j].MajorAPIVersion
		}
		return out[i].ValidFor.Start.After(out[j].ValidFor.Start)
	})
	return out, nil
}
