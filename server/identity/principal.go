package identity

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/signet-dev/signet/core/certext"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Principal is the identity a verified token proves.
type Principal struct {
	// Type is the identity type the claims were mapped with (never TypeAuto).
	Type Type
	// Issuer is the token's iss.
	Issuer string
	// Subject is the token's sub.
	Subject string
	// Challenge is what the proof of possession signs: the email address for
	// email identities, the subject otherwise — as Fulcio and its clients do.
	Challenge string
	// Exactly one of Email and URI is set: the certificate's single SAN.
	Email string
	URI   *url.URL
	// Extensions are the Fulcio certificate extensions for this identity.
	Extensions certext.Extensions
}

// clone copies p deeply enough that the copy can be changed freely.
func (p *Principal) clone() *Principal {
	c := *p
	if p.URI != nil {
		u := *p.URI
		c.URI = &u
	}
	return &c
}

// SAN returns the subject alternative name as text.
func (p *Principal) SAN() string {
	if p.URI != nil {
		return p.URI.String()
	}
	return p.Email
}

// Public services whose URLs appear in certificates unless platformURL says otherwise.
const (
	githubURL    = "https://github.com"
	gitlabURL    = "https://gitlab.com"
	buildkiteURL = "https://buildkite.com"
	circleAPIURL = "https://circleci.com/api/v2"
	circleAppURL = "https://app.circleci.com"
)

// claims are every claim any identity type reads; one decode serves all.
type claims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified flexBool `json:"email_verified"`

	// GitHub Actions (some shared with GitLab)
	JobWorkflowRef       string     `json:"job_workflow_ref"`
	JobWorkflowSHA       string     `json:"job_workflow_sha"`
	EventName            string     `json:"event_name"`
	SHA                  string     `json:"sha"`
	Workflow             string     `json:"workflow"`
	Repository           string     `json:"repository"`
	Ref                  string     `json:"ref"`
	RepositoryID         flexString `json:"repository_id"`
	RepositoryOwner      string     `json:"repository_owner"`
	RepositoryOwnerID    flexString `json:"repository_owner_id"`
	WorkflowRef          string     `json:"workflow_ref"`
	WorkflowSHA          string     `json:"workflow_sha"`
	RunID                flexString `json:"run_id"`
	RunAttempt           flexString `json:"run_attempt"`
	RepositoryVisibility string     `json:"repository_visibility"`
	Environment          string     `json:"environment"`
	RunnerEnvironment    string     `json:"runner_environment"`

	// GitLab CI
	CIConfigRefURI    string     `json:"ci_config_ref_uri"`
	CIConfigSHA       string     `json:"ci_config_sha"`
	ProjectPath       string     `json:"project_path"`
	RefType           string     `json:"ref_type"`
	ProjectID         flexString `json:"project_id"`
	NamespacePath     string     `json:"namespace_path"`
	NamespaceID       flexString `json:"namespace_id"`
	PipelineSource    string     `json:"pipeline_source"`
	PipelineID        flexString `json:"pipeline_id"`
	JobID             flexString `json:"job_id"` // GitLab and Buildkite
	ProjectVisibility string     `json:"project_visibility"`

	// Buildkite
	OrganizationSlug string     `json:"organization_slug"`
	PipelineSlug     string     `json:"pipeline_slug"`
	BuildNumber      flexString `json:"build_number"`
	BuildCommit      string     `json:"build_commit"`
	BuildSource      string     `json:"build_source"`

	// CircleCI
	CircleProjectID            string   `json:"oidc.circleci.com/project-id"`
	CirclePipelineDefinitionID string   `json:"oidc.circleci.com/pipeline-definition-id"`
	CirclePipelineID           string   `json:"oidc.circleci.com/pipeline-id"`
	CircleWorkflowID           string   `json:"oidc.circleci.com/workflow-id"`
	CircleJobID                string   `json:"oidc.circleci.com/job-id"`
	CircleVCSRef               string   `json:"oidc.circleci.com/vcs-ref"`
	CircleVCSOrigin            string   `json:"oidc.circleci.com/vcs-origin"`
	CircleSSHRerun             flexBool `json:"oidc.circleci.com/ssh-rerun"`

	// Kubernetes service-account tokens
	Kubernetes *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// flexString is a claim that platforms send as a string or a number (ids,
// build numbers); certificates carry its text either way.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expected a string or a number, got %s", b)
	}
	*s = flexString(n.String())
	return nil
}

// flexBool is a boolean claim that some issuers send as the string "true".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", `"true"`:
		*f = true
	case "false", `"false"`, "null":
		*f = false
	default:
		return fmt.Errorf("expected a boolean, got %s", b)
	}
	return nil
}

// need returns an error listing the claims (name, value pairs) that are empty.
func need(t Type, pairs ...string) error {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return refuse(ReasonClaim, "identity token lacks claim(s) %s, which a %s identity needs", strings.Join(missing, ", "), t)
}

// principal maps verified claims to a principal according to the issuer's type.
func (cc *compiled) principal(iss string, c *claims) (*Principal, error) {
	t := cc.Type
	if t == TypeAuto {
		var err error
		if t, err = cc.detect(c); err != nil {
			return nil, err
		}
	}
	p := &Principal{Type: t, Issuer: iss, Subject: c.Subject, Challenge: c.Subject}
	p.Extensions = certext.Extensions{Issuer: iss, Subject: c.Subject}
	if t != TypeEmail && c.Subject == "" {
		return nil, refuse(ReasonClaim, "identity token has no sub claim; a %s identity proves possession by signing it", t)
	}
	var err error
	switch t {
	case TypeGitHubWorkflow:
		err = cc.github(p, c)
	case TypeGitLabPipeline:
		err = cc.gitlab(p, c)
	case TypeBuildkiteJob:
		err = cc.buildkite(p, c)
	case TypeCircleCI:
		err = circleci(p, c)
	case TypeKubernetes:
		err = kubernetes(p, c)
	case TypeSPIFFE:
		err = cc.spiffe(p, c)
	case TypeURI:
		err = cc.uri(p, c)
	case TypeEmail:
		err = email(p, c)
	default:
		err = fmt.Errorf("identity type %q has no mapping", t)
	}
	if err != nil {
		return nil, err
	}
	// Certificates carry SANs as IA5String (ASCII); refuse here rather than
	// fail at signing time.
	if san := p.SAN(); !isASCII(san) {
		return nil, refuse(ReasonClaim, "identity %q contains non-ASCII characters, which an X.509 subject alternative name cannot hold", san)
	}
	return p, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// detect picks the identity type for TypeAuto from the claims' shape.
func (cc *compiled) detect(c *claims) (Type, error) {
	switch {
	case c.JobWorkflowRef != "":
		return TypeGitHubWorkflow, nil
	case c.ProjectPath != "" && c.PipelineID != "":
		return TypeGitLabPipeline, nil
	case c.OrganizationSlug != "":
		return TypeBuildkiteJob, nil
	case c.CircleProjectID != "":
		return TypeCircleCI, nil
	case c.Kubernetes != nil:
		return TypeKubernetes, nil
	case c.Email != "":
		return TypeEmail, nil
	case !cc.trustDomain.IsZero() && strings.HasPrefix(c.Subject, "spiffe://"):
		return TypeSPIFFE, nil
	case cc.subjectURL != nil:
		return TypeURI, nil
	}
	return "", refuse(ReasonClaim, "cannot tell the identity type from the token's claims: expected GitHub's job_workflow_ref, GitLab's project_path and pipeline_id, Buildkite's organization_slug, CircleCI's oidc.circleci.com/project-id, a kubernetes.io claim or an email claim; mint the token with one of these or configure the issuer's type")
}

func (cc *compiled) platform(def string) string {
	if cc.PlatformURL != "" {
		return cc.PlatformURL
	}
	return def
}

// parseSAN parses a URI SAN built from claims, refusing values that would
// not survive as a URI in a certificate.
func parseSAN(t Type, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, refuse(ReasonClaim, "the claims of this %s token make %q, which is not an absolute URI and cannot be the certificate's identity", t, s)
	}
	return u, nil
}

// github follows Fulcio's github-workflow template.
func (cc *compiled) github(p *Principal, c *claims) error {
	if err := need(TypeGitHubWorkflow,
		"job_workflow_ref", c.JobWorkflowRef, "job_workflow_sha", c.JobWorkflowSHA,
		"event_name", c.EventName, "sha", c.SHA, "workflow", c.Workflow,
		"repository", c.Repository, "ref", c.Ref, "repository_id", string(c.RepositoryID),
		"repository_owner", c.RepositoryOwner, "repository_owner_id", string(c.RepositoryOwnerID),
		"workflow_ref", c.WorkflowRef, "workflow_sha", c.WorkflowSHA,
		"run_id", string(c.RunID), "run_attempt", string(c.RunAttempt),
		"repository_visibility", c.RepositoryVisibility, "runner_environment", c.RunnerEnvironment,
	); err != nil {
		return err
	}
	base := cc.platform(githubURL)
	signer := base + "/" + c.JobWorkflowRef
	san, err := parseSAN(TypeGitHubWorkflow, signer)
	if err != nil {
		return err
	}
	p.URI = san
	e := &p.Extensions
	e.GithubWorkflowTrigger = c.EventName
	e.GithubWorkflowSHA = c.SHA
	e.GithubWorkflowName = c.Workflow
	e.GithubWorkflowRepository = c.Repository
	e.GithubWorkflowRef = c.Ref
	e.BuildSignerURI = signer
	e.BuildSignerDigest = c.JobWorkflowSHA
	e.RunnerEnvironment = c.RunnerEnvironment
	e.SourceRepositoryURI = base + "/" + c.Repository
	e.SourceRepositoryDigest = c.SHA
	e.SourceRepositoryRef = c.Ref
	e.SourceRepositoryIdentifier = string(c.RepositoryID)
	e.SourceRepositoryOwnerURI = base + "/" + c.RepositoryOwner
	e.SourceRepositoryOwnerIdentifier = string(c.RepositoryOwnerID)
	e.BuildConfigURI = base + "/" + c.WorkflowRef
	e.BuildConfigDigest = c.WorkflowSHA
	e.BuildTrigger = c.EventName
	e.RunInvocationURI = base + "/" + c.Repository + "/actions/runs/" + string(c.RunID) + "/attempts/" + string(c.RunAttempt)
	e.SourceRepositoryVisibilityAtSigning = c.RepositoryVisibility
	e.DeploymentEnvironment = c.Environment
	return nil
}

// gitlab follows Fulcio's gitlab-pipeline template.
func (cc *compiled) gitlab(p *Principal, c *claims) error {
	if err := need(TypeGitLabPipeline,
		"ci_config_ref_uri", c.CIConfigRefURI, "ci_config_sha", c.CIConfigSHA,
		"runner_environment", c.RunnerEnvironment, "project_path", c.ProjectPath,
		"sha", c.SHA, "ref_type", c.RefType, "ref", c.Ref, "project_id", string(c.ProjectID),
		"namespace_path", c.NamespacePath, "namespace_id", string(c.NamespaceID),
		"pipeline_source", c.PipelineSource, "job_id", string(c.JobID),
		"project_visibility", c.ProjectVisibility,
	); err != nil {
		return err
	}
	var ref string
	switch c.RefType {
	case "branch":
		ref = "refs/heads/" + c.Ref
	case "tag":
		ref = "refs/tags/" + c.Ref
	default:
		return refuse(ReasonClaim, "identity token's ref_type is %q; a gitlab-pipeline identity needs \"branch\" or \"tag\"", c.RefType)
	}
	config := "https://" + c.CIConfigRefURI
	san, err := parseSAN(TypeGitLabPipeline, config)
	if err != nil {
		return err
	}
	base := cc.platform(gitlabURL)
	p.URI = san
	e := &p.Extensions
	e.BuildSignerURI = config
	e.BuildSignerDigest = c.CIConfigSHA
	e.RunnerEnvironment = c.RunnerEnvironment
	e.SourceRepositoryURI = base + "/" + c.ProjectPath
	e.SourceRepositoryDigest = c.SHA
	e.SourceRepositoryRef = ref
	e.SourceRepositoryIdentifier = string(c.ProjectID)
	e.SourceRepositoryOwnerURI = base + "/" + c.NamespacePath
	e.SourceRepositoryOwnerIdentifier = string(c.NamespaceID)
	e.BuildConfigURI = config
	e.BuildConfigDigest = c.CIConfigSHA
	e.BuildTrigger = c.PipelineSource
	e.RunInvocationURI = base + "/" + c.ProjectPath + "/-/jobs/" + string(c.JobID)
	e.SourceRepositoryVisibilityAtSigning = c.ProjectVisibility
	e.DeploymentEnvironment = c.Environment
	return nil
}

// buildkite follows Fulcio's buildkite-job template. Only the claims the
// identity and run URI are built from are required: Buildkite adds
// runner_environment, build_commit and build_source only on request, and a
// missing one just leaves its extension out.
func (cc *compiled) buildkite(p *Principal, c *claims) error {
	if err := need(TypeBuildkiteJob,
		"organization_slug", c.OrganizationSlug, "pipeline_slug", c.PipelineSlug,
		"build_number", string(c.BuildNumber), "job_id", string(c.JobID),
	); err != nil {
		return err
	}
	pipeline := cc.platform(buildkiteURL) + "/" + c.OrganizationSlug + "/" + c.PipelineSlug
	san, err := parseSAN(TypeBuildkiteJob, pipeline)
	if err != nil {
		return err
	}
	p.URI = san
	e := &p.Extensions
	e.RunInvocationURI = pipeline + "/builds/" + string(c.BuildNumber) + "#" + string(c.JobID)
	e.RunnerEnvironment = c.RunnerEnvironment
	e.SourceRepositoryDigest = c.BuildCommit
	e.BuildTrigger = c.BuildSource
	return nil
}

// circleci follows Fulcio's circleci-job template. The identity needs the
// project and pipeline-definition ids; each other URI is left out when its
// claim is missing rather than written with an empty path segment.
func circleci(p *Principal, c *claims) error {
	if err := need(TypeCircleCI,
		"oidc.circleci.com/project-id", c.CircleProjectID,
		"oidc.circleci.com/pipeline-definition-id", c.CirclePipelineDefinitionID,
	); err != nil {
		return err
	}
	definition := circleAPIURL + "/projects/" + c.CircleProjectID + "/pipeline-definitions/" + c.CirclePipelineDefinitionID
	san, err := parseSAN(TypeCircleCI, definition)
	if err != nil {
		return err
	}
	p.URI = san
	e := &p.Extensions
	e.BuildSignerURI = definition
	if c.CirclePipelineID != "" {
		e.BuildConfigURI = circleAPIURL + "/pipeline/" + c.CirclePipelineID + "/config"
	}
	if c.CircleWorkflowID != "" && c.CircleJobID != "" {
		e.RunInvocationURI = circleAppURL + "/workflow/" + c.CircleWorkflowID + "/job/" + c.CircleJobID
	}
	if c.CircleSSHRerun {
		// A job re-run with SSH access may have been tampered with by hand;
		// Fulcio flags it so verifiers can refuse such runs.
		e.RunnerEnvironment = "ssh-rerun"
	}
	e.SourceRepositoryRef = c.CircleVCSRef
	e.SourceRepositoryURI = c.CircleVCSOrigin
	return nil
}

// kubernetes maps a service-account token to
// https://kubernetes.io/namespaces/<namespace>/serviceaccounts/<name>.
func kubernetes(p *Principal, c *claims) error {
	if c.Kubernetes == nil {
		return refuse(ReasonClaim, "identity token lacks the kubernetes.io claim a kubernetes identity needs; use a service-account token")
	}
	ns, sa := c.Kubernetes.Namespace, c.Kubernetes.ServiceAccount.Name
	if err := need(TypeKubernetes, "kubernetes.io.namespace", ns, "kubernetes.io.serviceaccount.name", sa); err != nil {
		return err
	}
	// Both names become URI path segments; Kubernetes restricts them to DNS
	// names, and anything else could forge a different identity path.
	if !isDNSName(ns) || !isDNSName(sa) {
		return refuse(ReasonClaim, "kubernetes.io namespace %q or service account %q is not a valid Kubernetes name", ns, sa)
	}
	p.URI = &url.URL{Scheme: "https", Host: "kubernetes.io", Path: "/namespaces/" + ns + "/serviceaccounts/" + sa}
	return nil
}

func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}

// spiffe maps a JWT-SVID: the SAN is the SPIFFE ID (sub), which must belong
// to the configured trust domain.
func (cc *compiled) spiffe(p *Principal, c *claims) error {
	id, err := spiffeid.FromString(c.Subject)
	if err != nil {
		return refuse(ReasonClaim, "sub %q is not a SPIFFE ID: %v", c.Subject, err)
	}
	if !id.MemberOf(cc.trustDomain) {
		return refuse(ReasonClaim, "SPIFFE ID %s is in trust domain %s, but this issuer is trusted only for %s", id, id.TrustDomain(), cc.trustDomain)
	}
	p.URI = id.URL()
	return nil
}

// uri maps a token whose sub is a URI under the configured subject domain.
func (cc *compiled) uri(p *Principal, c *claims) error {
	if _, err := mail.ParseAddress(c.Subject); err == nil {
		return refuse(ReasonClaim, "sub %q is an email address; a uri identity needs a URI under %s", c.Subject, cc.SubjectDomain)
	}
	u, err := url.Parse(c.Subject)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return refuse(ReasonClaim, "sub %q is not an absolute URI; a uri identity needs a URI under %s", c.Subject, cc.SubjectDomain)
	}
	if u.Scheme != cc.subjectURL.Scheme || u.Hostname() != cc.subjectURL.Hostname() {
		return refuse(ReasonClaim, "sub %q is outside the subject domain %s configured for this issuer", c.Subject, cc.SubjectDomain)
	}
	p.URI = u
	return nil
}

// email maps a token with a verified email address; the proof of
// possession signs the address, as Sigstore clients do.
func email(p *Principal, c *claims) error {
	if c.Email == "" {
		return refuse(ReasonClaim, "identity token lacks the email claim an email identity needs")
	}
	if !c.EmailVerified {
		return refuse(ReasonEmailUnverified, "email address %s is not verified by the issuer (email_verified is not true); verify it with the identity provider", c.Email)
	}
	addr, err := mail.ParseAddress(c.Email)
	if err != nil || addr.Address != c.Email || addr.Name != "" {
		return refuse(ReasonClaim, "email claim %q is not a plain email address", c.Email)
	}
	p.Email = c.Email
	p.Challenge = c.Email
	return nil
}
