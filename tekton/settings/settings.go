// Package settings holds the controller's configuration, read from its
// ConfigMap. Keys follow Tekton Chains' chains-config where the concept is
// the same, so a Chains user's ConfigMap means the same here; keys for what
// Chains has no word for start with "signet.". Unknown keys and values
// signet cannot honour are refused, naming the key and what it takes,
// instead of being silently ignored.
package settings

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Keys of the ConfigMap.
const (
	KeyTaskRunFormat         = "artifacts.taskrun.format"
	KeyTaskRunStorage        = "artifacts.taskrun.storage"
	KeyPipelineRunFormat     = "artifacts.pipelinerun.format"
	KeyPipelineRunStorage    = "artifacts.pipelinerun.storage"
	KeyOCIStorage            = "artifacts.oci.storage"
	KeyOCIRepositoryInsecure = "storage.oci.repository.insecure"
	KeyTransparency          = "transparency.enabled"
	KeyBuilderID             = "builder.id"
	KeyBuildType             = "builddefinition.buildtype"
	KeyIdentity              = "signet.identity"
	KeyFailedRuns            = "signet.failed-runs"
	KeyMaxAttempts           = "signet.max-attempts"
)

// Values.
const (
	FormatSLSAv2alpha4 = "slsa/v2alpha4"
	StorageOCI         = "oci"

	// IdentityController signs with the controller's own projected token.
	IdentityController = "controller"
	// IdentityRunServiceAccount signs each run with a token requested for
	// the run's own ServiceAccount, so the certificate names the pipeline
	// that built the artifact rather than the controller.
	IdentityRunServiceAccount = "run-serviceaccount"

	DefaultBuilderID   = "https://tekton.dev/chains/v2"
	DefaultBuildType   = "https://tekton.dev/chains/v2/slsa"
	BuildTypeTekton    = "https://tekton.dev/chains/v2/slsa-tekton"
	DefaultMaxAttempts = 5
)

// Settings is one parsed ConfigMap.
type Settings struct {
	// TaskRunOCI and PipelineRunOCI attach run provenance to each image
	// subject as an OCI referrer; provenance always goes to the attestation
	// store when the server has one.
	TaskRunOCI, PipelineRunOCI bool
	// SignImages makes cosign v3's image signature over each image
	// subject (artifacts.oci.storage: oci).
	SignImages bool
	// InsecureRegistry allows plain HTTP to registries off loopback.
	InsecureRegistry bool
	BuilderID        string
	BuildType        string
	Identity         string
	// FailedRuns attests provenance of failed runs too (no image
	// signatures: a failed build vouches for nothing).
	FailedRuns  bool
	MaxAttempts int
}

// Default is what an empty ConfigMap means.
func Default() Settings {
	return Settings{
		TaskRunOCI:     true,
		PipelineRunOCI: true,
		SignImages:     true,
		BuilderID:      DefaultBuilderID,
		BuildType:      DefaultBuildType,
		Identity:       IdentityController,
		MaxAttempts:    DefaultMaxAttempts,
	}
}

// Key describes one ConfigMap key for docs and error messages.
type Key struct {
	Name    string
	Default string
	Takes   string
}

// Keys lists every key the ConfigMap may hold, in documentation order.
var Keys = []Key{
	{KeyTaskRunFormat, FormatSLSAv2alpha4, "slsa/v2alpha4: SLSA v1 provenance in Chains' slsa/v2alpha4 shape (the only format signet writes)"},
	{KeyTaskRunStorage, StorageOCI, "oci: attach TaskRun provenance to each image as an OCI referrer; empty: keep it in the attestation store only"},
	{KeyPipelineRunFormat, FormatSLSAv2alpha4, "slsa/v2alpha4"},
	{KeyPipelineRunStorage, StorageOCI, "oci or empty, as artifacts.taskrun.storage"},
	{KeyOCIStorage, StorageOCI, "oci: sign each image a run produced (cosign v3 image signature, attached as a referrer); empty: no image signatures"},
	{KeyOCIRepositoryInsecure, "false", "true: registries off loopback may be reached over plain HTTP"},
	{KeyTransparency, "true", "true: every signature and attestation is logged (keyless certificates are proven by the log)"},
	{KeyBuilderID, DefaultBuilderID, "a URI: runDetails.builder.id of the provenance"},
	{KeyBuildType, DefaultBuildType, DefaultBuildType + " or " + BuildTypeTekton},
	{KeyIdentity, IdentityController, "controller: the controller's projected token; run-serviceaccount: a token requested for each run's ServiceAccount (needs the serviceaccounts/token rule)"},
	{KeyFailedRuns, "false", "true: attest provenance of failed runs too (never image signatures)"},
	{KeyMaxAttempts, strconv.Itoa(DefaultMaxAttempts), "attempts (1-100) before a run is marked signet.dev/signed=failed"},
}

// Error names a key and what it takes.
type Error struct {
	Key, Value, Reason string
}

func (e *Error) Error() string {
	if e.Value == "" && e.Reason == "" {
		return fmt.Sprintf("config key %q", e.Key)
	}
	return fmt.Sprintf("config key %q: %q: %s", e.Key, e.Value, e.Reason)
}

// ErrUnknownKey is wrapped by the error for a key signet does not know.
var ErrUnknownKey = errors.New("unknown key")

// Parse reads a ConfigMap's data. Every problem is reported, not just the
// first, so one edit can fix them all.
func Parse(data map[string]string) (Settings, error) {
	s := Default()
	var errs []error
	bad := func(k, v, why string) { errs = append(errs, &Error{Key: k, Value: v, Reason: why}) }
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(data[k])
		switch k {
		case KeyTaskRunFormat, KeyPipelineRunFormat:
			if v != FormatSLSAv2alpha4 {
				bad(k, v, "signet writes SLSA v1 provenance in Chains' slsa/v2alpha4 shape only; set slsa/v2alpha4 (Chains' in-toto, slsa/v1 and slsa/v2alpha3 are older shapes)")
			}
		case KeyTaskRunStorage, KeyPipelineRunStorage, KeyOCIStorage:
			oci, err := storage(v)
			if err != nil {
				bad(k, v, err.Error())
				continue
			}
			switch k {
			case KeyTaskRunStorage:
				s.TaskRunOCI = oci
			case KeyPipelineRunStorage:
				s.PipelineRunOCI = oci
			default:
				s.SignImages = oci
			}
		case KeyOCIRepositoryInsecure:
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(k, v, "takes true or false")
			}
			s.InsecureRegistry = b
		case KeyTransparency:
			if v != "true" {
				bad(k, v, "signet always logs: a keyless certificate lives ten minutes and the log entry is what proves the signature was made while it was valid; set true (Chains' false and manual have no keyless equivalent)")
			}
		case KeyBuilderID:
			if u, err := url.Parse(v); err != nil || u.Scheme == "" {
				bad(k, v, "takes an absolute URI, e.g. "+DefaultBuilderID)
			}
			s.BuilderID = v
		case KeyBuildType:
			if v != DefaultBuildType && v != BuildTypeTekton {
				bad(k, v, "takes "+DefaultBuildType+" or "+BuildTypeTekton)
			}
			s.BuildType = v
		case KeyIdentity:
			if v != IdentityController && v != IdentityRunServiceAccount {
				bad(k, v, "takes controller or run-serviceaccount")
			}
			s.Identity = v
		case KeyFailedRuns:
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(k, v, "takes true or false")
			}
			s.FailedRuns = b
		case KeyMaxAttempts:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100 {
				bad(k, v, "takes a whole number from 1 to 100")
			}
			s.MaxAttempts = n
		default:
			if why, ok := chainsOnly[k]; ok {
				errs = append(errs, fmt.Errorf("config key %q: %w: a Tekton Chains key with no meaning here (%s); remove it", k, ErrUnknownKey, why))
				continue
			}
			errs = append(errs, fmt.Errorf("config key %q: %w; the ConfigMap takes %s", k, ErrUnknownKey, strings.Join(names(), ", ")))
		}
	}
	if len(errs) > 0 {
		return Default(), errors.Join(errs...)
	}
	return s, nil
}

// storage reads a Chains storage list ("oci", "tekton,oci", ""): signet
// stores in OCI registries and its attestation store only; payloads are
// never kept in the run's annotations (their 256 KiB limit is what makes
// Chains' tekton storage fail on large runs).
func storage(v string) (bool, error) {
	oci := false
	for _, b := range strings.Split(v, ",") {
		switch b = strings.TrimSpace(b); b {
		case "":
		case StorageOCI:
			oci = true
		case "tekton":
			return false, errors.New("signet never stores payloads in run annotations (their 256 KiB limit); use oci, or leave it empty to keep bundles in the attestation store only")
		default:
			return false, fmt.Errorf("backend %q is not supported; use oci, or leave it empty to keep bundles in the attestation store only", b)
		}
	}
	return oci, nil
}

// chainsOnly are Chains keys a migrating user may still have, and why
// signet has no use for them.
var chainsOnly = map[string]string{
	"artifacts.taskrun.signer":                     "signet signs keyless, with certificates from its CA",
	"artifacts.pipelinerun.signer":                 "signet signs keyless, with certificates from its CA",
	"artifacts.oci.signer":                         "signet signs keyless, with certificates from its CA",
	"artifacts.oci.format":                         "image signatures are cosign v3's, in Sigstore bundles",
	"artifacts.pipelinerun.enable-deep-inspection": "PipelineRun provenance always carries its TaskRuns' results",
	"transparency.url":                             "the log is the one the signing config names (--server or --signing-config)",
	"signers.x509.fulcio.enabled":                  "signet always signs keyless",
	"signers.x509.fulcio.address":                  "the CA is the one the signing config names (--server or --signing-config)",
	"signers.x509.fulcio.issuer":                   "the CA decides which issuers it accepts",
	"signers.x509.identity.token.file":             "the controller's token file is its --identity-token flag",
	"storage.oci.repository":                       "bundles are attached next to each image (OCI referrers live in the image's repository)",
}

func names() []string {
	out := make([]string, len(Keys))
	for i, k := range Keys {
		out[i] = k.Name
	}
	return out
}

// Names lists the keys, in documentation order.
func Names() []string { return slices.Clone(names()) }
