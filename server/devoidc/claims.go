package devoidc

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// param is one query parameter of a kind: its default (computed from the
// parameters resolved before it) and its validation.
type param struct {
	name  string
	def   func(v values) string
	check func(string) error
}

type values map[string]string

// kind is one identity platform whose token shape the issuer imitates.
type kind struct {
	params []param
	build  func(v values) (map[string]any, error)
	// audienceList: the platform sends aud as an array (Kubernetes).
	audienceList bool
}

func kindNames() []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// resolve validates params against the kind and fills in defaults.
func (k kind) resolve(name string, params url.Values) (values, error) {
	known := make([]string, len(k.params))
	for i, p := range k.params {
		known[i] = p.name
	}
	for key, vs := range params {
		if !slices.Contains(known, key) {
			return nil, fmt.Errorf("unknown parameter %q for kind=%s; known: %s", key, name, strings.Join(known, ", "))
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("parameter %q given %d times; give it once", key, len(vs))
		}
	}
	v := values{}
	for _, p := range k.params {
		if given, ok := params[p.name]; ok {
			v[p.name] = given[0]
		} else if p.def != nil {
			v[p.name] = p.def(v)
		}
		if p.check != nil {
			if err := p.check(v[p.name]); err != nil {
				return nil, fmt.Errorf("kind=%s: parameter %s=%q: %w", name, p.name, v[p.name], err)
			}
		}
	}
	return v, nil
}

// Deterministic stand-ins for platform IDs: the same identity gets the same
// IDs on every run, and different identities different ones.
func numericID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(h[:4])%900_000_000+100_000_000), 10)
}

func commitFor(seed string) string {
	h := sha1.Sum([]byte("commit:" + seed))
	return hex.EncodeToString(h[:])
}

func uuidFor(seed string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("signet-dev-oidc:"+seed)).String()
}

func fixed(s string) func(values) string { return func(values) string { return s } }

// Validations. Values that end up inside a colon-separated sub must not
// contain ':' or the sub would be ambiguous.
var (
	reDigits     = regexp.MustCompile(`^[0-9]{1,19}$`)
	reCommit     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	reGitHubRepo = regexp.MustCompile(`^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$`)
	reGitHubUser = regexp.MustCompile(`^[A-Za-z0-9-]+(\[bot\])?$`)
	reWorkflow   = regexp.MustCompile(`^\.github/workflows/[A-Za-z0-9._/-]+\.ya?ml$`)
	reJobWFRef   = regexp.MustCompile(`^[A-Za-z0-9-]+/[A-Za-z0-9._-]+/\.github/workflows/[A-Za-z0-9._/-]+\.ya?ml@refs/[^\s:]+$`)
	reEvent      = regexp.MustCompile(`^[a-z_]+$`)
	reGitLabPath = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`)
	reSlug       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	reHost       = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]+)?$`)
	reDNSLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	reVCSOrigin  = regexp.MustCompile(`^[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)+$`)
)

func matches(re *regexp.Regexp, what string) func(string) error {
	return func(s string) error {
		if !re.MatchString(s) {
			return fmt.Errorf("not %s", what)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(s string) error {
		if !slices.Contains(allowed, s) {
			return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
		}
		return nil
	}
}

var (
	checkDigits = matches(reDigits, "a decimal number")
	checkCommit = matches(reCommit, "a 40-character lowercase hex commit SHA")
	checkBool   = oneOf("true", "false")
)

func checkRef(s string) error {
	if !strings.HasPrefix(s, "refs/") || strings.ContainsAny(s, ": \t\n") || strings.Contains(s, "..") {
		return errors.New("not a full git ref such as refs/heads/main or refs/tags/v1.0.0")
	}
	return nil
}

func checkBranchName(s string) error {
	if s == "" || strings.HasPrefix(s, "refs/") || strings.ContainsAny(s, ": \t\n") || strings.Contains(s, "..") {
		return errors.New("not a short branch or tag name such as main (without refs/heads/)")
	}
	return nil
}

func optional(check func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

func checkEnvironment(s string) error {
	if strings.ContainsAny(s, ":\n") {
		return errors.New("must not contain ':' or a newline")
	}
	return nil
}

func checkUUID(s string) error {
	if _, err := uuid.Parse(s); err != nil || strings.ToLower(s) != s || len(s) != 36 {
		return errors.New("not a lowercase UUID such as 1b2c3d4e-0000-4000-8000-000000000000")
	}
	return nil
}

func checkDNSSubdomain(s string) error {
	if len(s) == 0 || len(s) > 253 {
		return errors.New("not a DNS subdomain name (lowercase alphanumerics, '-' and '.')")
	}
	for _, l := range strings.Split(s, ".") {
		if !reDNSLabel.MatchString(l) {
			return errors.New("not a DNS subdomain name (lowercase alphanumerics, '-' and '.')")
		}
	}
	return nil
}

func checkEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return errors.New("not a bare email address such as alice@example.com")
	}
	return nil
}

var kinds = map[string]kind{
	"github":     githubKind,
	"gitlab":     gitlabKind,
	"kubernetes": kubernetesKind,
	"buildkite":  buildkiteKind,
	"circleci":   circleciKind,
	"spiffe":     spiffeKind,
	"email":      emailKind,
}

// claimsSupported lists every non-registered claim any kind emits, for discovery.
func claimsSupported() []string {
	return []string{
		"sub", "aud", "exp", "iat", "iss", "jti", "nbf",
		// GitHub Actions
		"ref", "ref_type", "ref_protected", "sha", "repository", "repository_id", "repository_owner",
		"repository_owner_id", "repository_visibility", "actor", "actor_id", "run_id", "run_number",
		"run_attempt", "runner_environment", "workflow", "workflow_ref", "workflow_sha",
		"job_workflow_ref", "job_workflow_sha", "event_name", "head_ref", "base_ref", "environment",
		// GitLab CI
		"namespace_id", "namespace_path", "project_id", "project_path", "user_id", "user_login",
		"user_email", "pipeline_id", "pipeline_source", "job_id", "ref_path", "runner_id",
		"project_visibility", "ci_config_ref_uri", "ci_config_sha", "environment_protected",
		// Kubernetes
		"kubernetes.io",
		// Buildkite
		"organization_slug", "pipeline_slug", "build_number", "build_branch", "build_tag",
		"build_commit", "step_key", "agent_id",
		// CircleCI
		"oidc.circleci.com/project-id", "oidc.circleci.com/vcs-origin", "oidc.circleci.com/vcs-ref",
		"oidc.circleci.com/context-ids", "oidc.circleci.com/ssh-rerun",
		// email
		"email", "email_verified",
	}
}

// githubKind follows GitHub's "About security hardening with OpenID Connect"
// claim list. IDs and counters are strings there, as here.
var githubKind = kind{
	params: []param{
		{name: "repository", def: fixed("acme/widget"), check: matches(reGitHubRepo, "owner/name")},
		{name: "repository_id", def: func(v values) string { return numericID("repo:" + v["repository"]) }, check: checkDigits},
		{name: "repository_owner_id", def: func(v values) string { return numericID("owner:" + ghOwner(v)) }, check: checkDigits},
		{name: "repository_visibility", def: fixed("public"), check: oneOf("public", "private", "internal")},
		{name: "ref", def: fixed("refs/heads/main"), check: checkRef},
		{name: "ref_protected", def: fixed("false"), check: checkBool},
		{name: "sha", def: func(v values) string { return commitFor(v["repository"] + "@" + v["ref"]) }, check: checkCommit},
		{name: "workflow", def: fixed(".github/workflows/release.yml"), check: matches(reWorkflow, "a workflow file path such as .github/workflows/release.yml")},
		// GitHub's workflow claim is the workflow's name, which is its path when the file sets none.
		{name: "workflow_name", def: func(v values) string { return v["workflow"] }, check: optional(checkEnvironment)},
		{name: "workflow_sha", def: func(v values) string { return v["sha"] }, check: checkCommit},
		{name: "job_workflow_ref", def: func(v values) string { return v["repository"] + "/" + v["workflow"] + "@" + v["ref"] }, check: matches(reJobWFRef, "owner/repo/.github/workflows/file.yml@refs/...")},
		{name: "job_workflow_sha", def: func(v values) string { return v["sha"] }, check: checkCommit},
		{name: "event", def: fixed("push"), check: matches(reEvent, "an event name such as push, workflow_dispatch or pull_request")},
		{name: "head_ref", check: optional(checkBranchName)},
		{name: "base_ref", check: optional(checkBranchName)},
		{name: "actor", def: func(v values) string { return ghOwner(v) }, check: matches(reGitHubUser, "a GitHub login")},
		{name: "actor_id", def: func(v values) string { return numericID("actor:" + v["actor"]) }, check: checkDigits},
		{name: "run_id", def: func(v values) string { return numericID("run:" + v["repository"] + v["sha"]) }, check: checkDigits},
		{name: "run_number", def: fixed("1"), check: checkDigits},
		{name: "run_attempt", def: fixed("1"), check: checkDigits},
		{name: "environment", check: checkEnvironment},
		{name: "runner_environment", def: fixed("github-hosted"), check: oneOf("github-hosted", "self-hosted")},
	},
	build: func(v values) (map[string]any, error) {
		repo, ref := v["repository"], v["ref"]
		var sub string
		switch {
		case v["environment"] != "":
			sub = "repo:" + repo + ":environment:" + v["environment"]
		case v["event"] == "pull_request" || v["event"] == "pull_request_target":
			sub = "repo:" + repo + ":pull_request"
		default:
			sub = "repo:" + repo + ":ref:" + ref
		}
		refType := ""
		switch {
		case strings.HasPrefix(ref, "refs/heads/"):
			refType = "branch"
		case strings.HasPrefix(ref, "refs/tags/"):
			refType = "tag"
		}
		c := map[string]any{
			"sub":                   sub,
			"ref":                   ref,
			"ref_type":              refType,
			"ref_protected":         v["ref_protected"],
			"sha":                   v["sha"],
			"repository":            repo,
			"repository_id":         v["repository_id"],
			"repository_owner":      ghOwner(v),
			"repository_owner_id":   v["repository_owner_id"],
			"repository_visibility": v["repository_visibility"],
			"actor":                 v["actor"],
			"actor_id":              v["actor_id"],
			"run_id":                v["run_id"],
			"run_number":            v["run_number"],
			"run_attempt":           v["run_attempt"],
			"runner_environment":    v["runner_environment"],
			"workflow":              v["workflow_name"],
			"workflow_ref":          repo + "/" + v["workflow"] + "@" + ref,
			"workflow_sha":          v["workflow_sha"],
			"job_workflow_ref":      v["job_workflow_ref"],
			"job_workflow_sha":      v["job_workflow_sha"],
			"event_name":            v["event"],
			"head_ref":              v["head_ref"],
			"base_ref":              v["base_ref"],
		}
		if v["environment"] != "" {
			c["environment"] = v["environment"]
		}
		return c, nil
	},
}

func ghOwner(v values) string {
	owner, _, _ := strings.Cut(v["repository"], "/")
	return owner
}

// gitlabKind follows GitLab's "OpenID Connect (OIDC) Authentication Using ID
// Tokens" claim list, including the claims added for Fulcio.
var gitlabKind = kind{
	params: []param{
		{name: "host", def: fixed("gitlab.com"), check: matches(reHost, "a host name such as gitlab.com")},
		{name: "project_path", def: fixed("acme/widget"), check: matches(reGitLabPath, "group/project")},
		{name: "project_id", def: func(v values) string { return numericID("project:" + v["project_path"]) }, check: checkDigits},
		{name: "namespace_id", def: func(v values) string { return numericID("namespace:" + glNamespace(v)) }, check: checkDigits},
		{name: "project_visibility", def: fixed("public"), check: oneOf("public", "internal", "private")},
		{name: "ref", def: fixed("main"), check: checkBranchName},
		{name: "ref_type", def: fixed("branch"), check: oneOf("branch", "tag")},
		{name: "ref_protected", def: fixed("true"), check: checkBool},
		{name: "sha", def: func(v values) string { return commitFor(v["project_path"] + "@" + v["ref"]) }, check: checkCommit},
		{name: "ci_config_ref_uri", def: func(v values) string {
			return v["host"] + "/" + v["project_path"] + "//.gitlab-ci.yml@" + glRefPath(v)
		}, check: func(s string) error {
			if !strings.Contains(s, "//") || !strings.Contains(s, "@refs/") {
				return errors.New("not of the form host/group/project//path/to/.gitlab-ci.yml@refs/heads/main")
			}
			return nil
		}},
		{name: "ci_config_sha", def: func(v values) string { return v["sha"] }, check: checkCommit},
		{name: "pipeline_id", def: func(v values) string { return numericID("pipeline:" + v["project_path"] + v["sha"]) }, check: checkDigits},
		{name: "pipeline_source", def: fixed("push"), check: matches(reEvent, "a pipeline source such as push, web or merge_request_event")},
		{name: "job_id", def: func(v values) string { return numericID("job:" + v["pipeline_id"]) }, check: checkDigits},
		{name: "user_login", def: fixed("alice"), check: matches(reSlug, "a GitLab username")},
		{name: "user_id", def: func(v values) string { return numericID("user:" + v["user_login"]) }, check: checkDigits},
		{name: "user_email", def: func(v values) string { return v["user_login"] + "@example.com" }, check: checkEmail},
		{name: "environment", check: checkEnvironment},
		{name: "runner_id", def: fixed("1"), check: checkDigits},
		{name: "runner_environment", def: fixed("gitlab-hosted"), check: oneOf("gitlab-hosted", "self-hosted")},
	},
	build: func(v values) (map[string]any, error) {
		runnerID, _ := strconv.ParseInt(v["runner_id"], 10, 64)
		c := map[string]any{
			"sub":                "project_path:" + v["project_path"] + ":ref_type:" + v["ref_type"] + ":ref:" + v["ref"],
			"namespace_id":       v["namespace_id"],
			"namespace_path":     glNamespace(v),
			"project_id":         v["project_id"],
			"project_path":       v["project_path"],
			"project_visibility": v["project_visibility"],
			"user_id":            v["user_id"],
			"user_login":         v["user_login"],
			"user_email":         v["user_email"],
			"pipeline_id":        v["pipeline_id"],
			"pipeline_source":    v["pipeline_source"],
			"job_id":             v["job_id"],
			"ref":                v["ref"],
			"ref_type":           v["ref_type"],
			"ref_path":           glRefPath(v),
			"ref_protected":      v["ref_protected"],
			"runner_id":          runnerID, // a number in GitLab's tokens
			"runner_environment": v["runner_environment"],
			"sha":                v["sha"],
			"ci_config_ref_uri":  v["ci_config_ref_uri"],
			"ci_config_sha":      v["ci_config_sha"],
		}
		if v["environment"] != "" {
			c["environment"] = v["environment"]
			c["environment_protected"] = "false"
		}
		return c, nil
	},
}

func glNamespace(v values) string {
	p := v["project_path"]
	return p[:strings.LastIndex(p, "/")]
}

func glRefPath(v values) string {
	if v["ref_type"] == "tag" {
		return "refs/tags/" + v["ref"]
	}
	return "refs/heads/" + v["ref"]
}

// kubernetesKind is a projected service-account token (TokenRequest API).
var kubernetesKind = kind{
	audienceList: true,
	params: []param{
		{name: "namespace", def: fixed("default"), check: matches(reDNSLabel, "a Kubernetes namespace name (DNS label)")},
		{name: "serviceaccount", def: fixed("default"), check: checkDNSSubdomain},
		{name: "pod", def: func(v values) string { return v["serviceaccount"] + "-0" }, check: checkDNSSubdomain},
		{name: "node", def: fixed("node-1"), check: checkDNSSubdomain},
	},
	build: func(v values) (map[string]any, error) {
		ns, sa := v["namespace"], v["serviceaccount"]
		return map[string]any{
			"sub": "system:serviceaccount:" + ns + ":" + sa,
			"kubernetes.io": map[string]any{
				"namespace":      ns,
				"serviceaccount": map[string]string{"name": sa, "uid": uuidFor("sa:" + ns + "/" + sa)},
				"pod":            map[string]string{"name": v["pod"], "uid": uuidFor("pod:" + ns + "/" + v["pod"])},
				"node":           map[string]string{"name": v["node"], "uid": uuidFor("node:" + v["node"])},
			},
		}, nil
	},
}

// buildkiteKind follows the Buildkite agent's OIDC token.
var buildkiteKind = kind{
	params: []param{
		{name: "organization_slug", def: fixed("acme"), check: matches(reSlug, "a Buildkite organization slug")},
		{name: "pipeline_slug", def: fixed("widget"), check: matches(reSlug, "a Buildkite pipeline slug")},
		{name: "build_number", def: fixed("1"), check: checkDigits},
		{name: "build_branch", def: fixed("main"), check: checkBranchName},
		{name: "build_tag", check: optional(checkBranchName)},
		{name: "build_commit", def: func(v values) string {
			return commitFor(v["organization_slug"] + "/" + v["pipeline_slug"] + "@" + v["build_branch"])
		}, check: checkCommit},
		{name: "step_key", check: optional(matches(reSlug, "a step key"))},
		{name: "job_id", def: func(v values) string { return uuidFor("bk-job:" + v["pipeline_slug"] + "#" + v["build_number"]) }, check: checkUUID},
		{name: "agent_id", def: func(v values) string { return uuidFor("bk-agent:" + v["organization_slug"]) }, check: checkUUID},
	},
	build: func(v values) (map[string]any, error) {
		ref := "refs/heads/" + v["build_branch"]
		var tag, step any // null when absent, as Buildkite sends them
		if v["build_tag"] != "" {
			ref, tag = "refs/tags/"+v["build_tag"], v["build_tag"]
		}
		if v["step_key"] != "" {
			step = v["step_key"]
		}
		n, _ := strconv.ParseInt(v["build_number"], 10, 64)
		return map[string]any{
			"sub": "organization:" + v["organization_slug"] + ":pipeline:" + v["pipeline_slug"] +
				":ref:" + ref + ":commit:" + v["build_commit"] + ":step:" + v["step_key"],
			"organization_slug": v["organization_slug"],
			"pipeline_slug":     v["pipeline_slug"],
			"build_number":      n,
			"build_branch":      v["build_branch"],
			"build_tag":         tag,
			"build_commit":      v["build_commit"],
			"step_key":          step,
			"job_id":            v["job_id"],
			"agent_id":          v["agent_id"],
		}, nil
	},
}

// circleciKind follows CircleCI's OIDC token ($CIRCLE_OIDC_TOKEN).
var circleciKind = kind{
	params: []param{
		{name: "org_id", def: fixed(uuidFor("circleci-org:acme")), check: checkUUID},
		{name: "project_id", def: func(v values) string { return uuidFor("circleci-project:" + v["org_id"]) }, check: checkUUID},
		{name: "user_id", def: fixed(uuidFor("circleci-user:alice")), check: checkUUID},
		{name: "vcs_origin", def: fixed("github.com/acme/widget"), check: matches(reVCSOrigin, "a repository such as github.com/acme/widget")},
		{name: "vcs_ref", def: fixed("refs/heads/main"), check: checkRef},
		{name: "context_ids", check: func(s string) error {
			if s == "" {
				return nil
			}
			for _, id := range strings.Split(s, ",") {
				if err := checkUUID(id); err != nil {
					return fmt.Errorf("comma-separated list entry %q: %w", id, err)
				}
			}
			return nil
		}},
		{name: "ssh_rerun", def: fixed("false"), check: checkBool},
		// Fulcio builds the CircleCI SAN from the pipeline definition and the
		// run address from pipeline, workflow and job: real tokens carry all four.
		{name: "pipeline_definition_id", def: func(v values) string { return uuidFor("circleci-pipeline-definition:" + v["project_id"]) }, check: checkUUID},
		{name: "pipeline_id", def: fixed(uuidFor("circleci-pipeline:1")), check: checkUUID},
		{name: "workflow_id", def: fixed(uuidFor("circleci-workflow:1")), check: checkUUID},
		{name: "job_id", def: fixed(uuidFor("circleci-job:1")), check: checkUUID},
	},
	build: func(v values) (map[string]any, error) {
		c := map[string]any{
			"sub":                          "org/" + v["org_id"] + "/project/" + v["project_id"] + "/user/" + v["user_id"],
			"oidc.circleci.com/project-id": v["project_id"],
			"oidc.circleci.com/pipeline-definition-id": v["pipeline_definition_id"],
			"oidc.circleci.com/pipeline-id":            v["pipeline_id"],
			"oidc.circleci.com/workflow-id":            v["workflow_id"],
			"oidc.circleci.com/job-id":                 v["job_id"],
			"oidc.circleci.com/vcs-origin":             v["vcs_origin"],
			"oidc.circleci.com/vcs-ref":                v["vcs_ref"],
			"oidc.circleci.com/ssh-rerun":              v["ssh_rerun"] == "true",
		}
		if v["context_ids"] != "" {
			c["oidc.circleci.com/context-ids"] = strings.Split(v["context_ids"], ",")
		}
		return c, nil
	},
}

// spiffeKind is a JWT-SVID: sub is the SPIFFE ID and nothing else is added.
var spiffeKind = kind{
	params: []param{
		{name: "trust_domain", def: fixed("example.org"), check: func(s string) error {
			_, err := spiffeid.TrustDomainFromString(s)
			return err
		}},
		{name: "path", def: fixed("/ns/default/sa/default"), check: func(s string) error {
			if s == "" {
				return errors.New("must name a workload, such as /ns/default/sa/default")
			}
			return spiffeid.ValidatePath(s)
		}},
	},
	build: func(v values) (map[string]any, error) {
		td, err := spiffeid.TrustDomainFromString(v["trust_domain"])
		if err != nil {
			return nil, err
		}
		id, err := spiffeid.FromPath(td, v["path"])
		if err != nil {
			return nil, err
		}
		return map[string]any{"sub": id.String()}, nil
	},
}

// emailKind is what an email-based identity provider issues after login.
var emailKind = kind{
	params: []param{
		{name: "email", def: fixed("alice@example.com"), check: checkEmail},
	},
	build: func(v values) (map[string]any, error) {
		return map[string]any{
			"sub":            v["email"],
			"email":          v["email"],
			"email_verified": true,
		}, nil
	},
}
