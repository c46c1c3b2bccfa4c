package settings

import (
	"errors"
	"strings"
	"testing"
)

func TestEmptyIsDefault(t *testing.T) {
	s, err := Parse(nil)
	if err != nil || s != Default() {
		t.Fatalf("Parse(nil) = %+v, %v; want the defaults", s, err)
	}
}

// Every documented key, set to a value other than its default, changes
// what it says it changes; and every key's documented default parses to the
// defaults.
func TestEachKey(t *testing.T) {
	defaults := map[string]string{}
	for _, k := range Keys {
		defaults[k.Name] = k.Default
	}
	if s, err := Parse(defaults); err != nil || s != Default() {
		t.Fatalf("the documented defaults parse to %+v, %v; want Default()", s, err)
	}
	cases := map[string]struct {
		value string
		check func(Settings) bool
	}{
		KeyTaskRunFormat:         {"slsa/v2alpha4", func(s Settings) bool { return s == Default() }},
		KeyPipelineRunFormat:     {"slsa/v2alpha4", func(s Settings) bool { return s == Default() }},
		KeyTaskRunStorage:        {"", func(s Settings) bool { return !s.TaskRunOCI && s.PipelineRunOCI }},
		KeyPipelineRunStorage:    {" ", func(s Settings) bool { return !s.PipelineRunOCI && s.TaskRunOCI }},
		KeyOCIStorage:            {"", func(s Settings) bool { return !s.SignImages }},
		KeyOCIRepositoryInsecure: {"true", func(s Settings) bool { return s.InsecureRegistry }},
		KeyTransparency:          {"true", func(s Settings) bool { return s == Default() }},
		KeyBuilderID:             {"https://ci.example.com/tekton", func(s Settings) bool { return s.BuilderID == "https://ci.example.com/tekton" }},
		KeyBuildType:             {BuildTypeTekton, func(s Settings) bool { return s.BuildType == BuildTypeTekton }},
		KeyIdentity:              {IdentityRunServiceAccount, func(s Settings) bool { return s.Identity == IdentityRunServiceAccount }},
		KeyFailedRuns:            {"true", func(s Settings) bool { return s.FailedRuns }},
		KeyMaxAttempts:           {"12", func(s Settings) bool { return s.MaxAttempts == 12 }},
	}
	if len(cases) != len(Keys) {
		t.Fatalf("%d cases for %d keys: every key needs a case", len(cases), len(Keys))
	}
	for key, c := range cases {
		s, err := Parse(map[string]string{key: c.value})
		if err != nil || !c.check(s) {
			t.Errorf("%s=%q: got %+v, %v", key, c.value, s, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{KeyTaskRunFormat, "in-toto", "slsa/v2alpha4 shape only"},
		{KeyPipelineRunFormat, "slsa/v1", "slsa/v2alpha4 shape only"},
		{KeyTaskRunStorage, "tekton", "never stores payloads in run annotations"},
		{KeyTaskRunStorage, "oci,gcs", `backend "gcs" is not supported`},
		{KeyOCIStorage, "docdb", `backend "docdb"`},
		{KeyOCIRepositoryInsecure, "yes", "true or false"},
		{KeyTransparency, "manual", "signet always logs"},
		{KeyTransparency, "false", "signet always logs"},
		{KeyBuilderID, "not a uri", "absolute URI"},
		{KeyBuildType, "https://example.com/bt", "takes https://tekton.dev/chains/v2/slsa or"},
		{KeyIdentity, "pipeline", "controller or run-serviceaccount"},
		{KeyFailedRuns, "sometimes", "true or false"},
		{KeyMaxAttempts, "0", "1 to 100"},
		{KeyMaxAttempts, "x", "1 to 100"},
	}
	for _, c := range cases {
		s, err := Parse(map[string]string{c.key: c.value})
		var e *Error
		if !errors.As(err, &e) || e.Key != c.key || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: error %v; want one naming the key and %q", c.key, c.value, err, c.want)
		}
		if s != Default() {
			t.Errorf("%s=%q: a refused ConfigMap must change nothing, got %+v", c.key, c.value, s)
		}
	}
}

func TestUnknownKeysAndAllProblemsReported(t *testing.T) {
	_, err := Parse(map[string]string{
		"artifacts.taskrun.signer": "x509", // a Chains key signet has no use for
		KeyMaxAttempts:             "-1",
		"signet.identty":           "controller",
	})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("error %v; want ErrUnknownKey", err)
	}
	for _, want := range []string{`"artifacts.taskrun.signer": unknown key: a Tekton Chains key with no meaning here (signet signs keyless`, `"signet.identty"`, `"signet.max-attempts"`, "the ConfigMap takes artifacts.taskrun.format,"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
