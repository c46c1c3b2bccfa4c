package artifacts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Chains' type-hint names (pkg/artifacts/signable.go, formats/slsa/attest).
const (
	imageURLSuffix       = "IMAGE_URL"
	imageDigestSuffix    = "IMAGE_DIGEST"
	imagesName           = "IMAGES"
	artifactURISuffix    = "ARTIFACT_URI"
	artifactDigestSuffix = "ARTIFACT_DIGEST"
	outputsSuffix        = "ARTIFACT_OUTPUTS"
	inputsSuffix         = "ARTIFACT_INPUTS"
	isBuildArtifactKey   = "isBuildArtifact"
	gitURLName           = "CHAINS-GIT_URL"
	gitCommitName        = "CHAINS-GIT_COMMIT"
)

// Result is a run's or a step's result by name: TaskRun, step and
// PipelineRun results are read alike (here and in tekton/provenance).
type Result struct {
	Name  string
	Value v1.ParamValue
}

// TaskRunResults are a TaskRun's (or a step's) results.
func TaskRunResults(rs []v1.TaskRunResult) []Result {
	out := make([]Result, 0, len(rs))
	for _, r := range rs {
		out = append(out, Result{r.Name, r.Value})
	}
	return out
}

// PipelineRunResults are a PipelineRun's results.
func PipelineRunResults(rs []v1.PipelineRunResult) []Result {
	out := make([]Result, 0, len(rs))
	for _, r := range rs {
		out = append(out, Result{r.Name, r.Value})
	}
	return out
}

// valueType is the value's type; objects built in code may leave Type unset.
func valueType(v v1.ParamValue) v1.ParamType {
	switch {
	case v.Type != "":
		return v.Type
	case v.ObjectVal != nil:
		return v1.ParamTypeObject
	case v.ArrayVal != nil:
		return v1.ParamTypeArray
	}
	return v1.ParamTypeString
}

// taskRunOutputs reads a TaskRun's outputs: each step's results (Chains'
// v2alpha4 reads StepAction results), the TaskRun's, then status.artifacts.
func (s *scan) taskRunOutputs(scope string, tr *v1.TaskRun) {
	for _, st := range tr.Status.Steps {
		s.outputs(scope+"step "+st.Name+"/", TaskRunResults(st.Results), false)
	}
	s.outputs(scope, TaskRunResults(tr.Status.Results), true)
	if a := tr.Status.Artifacts; a != nil {
		for _, art := range a.Outputs {
			if !art.BuildOutput {
				continue // a byproduct (TEP-0147), not a subject
			}
			for i, v := range art.Values {
				src := fmt.Sprintf("%sstatus.artifacts output %q", scope, art.Name)
				a, ok := s.artifactValue(src, i, v)
				if !ok {
					continue
				}
				// As for *ARTIFACT_OUTPUTS: an output that names an image
				// is signed as one (Tekton's artifacts docs list images
				// among build outputs).
				if hex := a.Digest["sha256"]; hex != "" && namesRegistry(a.URI) {
					if img, err := parseImage(a.URI, "sha256:"+hex); err == nil {
						img.Source = src
						s.addImage(img)
						continue
					}
				}
				s.addArtifact(a)
			}
		}
	}
}

// outputs reads one list of results for subjects. legacy: also the hints
// only Chains' older formats read, which never looked at step results.
func (s *scan) outputs(scope string, rs []Result, legacy bool) {
	s.pairs(scope, rs, imageURLSuffix, imageDigestSuffix, func(src, urlName, url, digestName, digest string) {
		if err := checkImageDigest(digest); err != nil {
			s.problem("%sresult %s %s: %v", scope, digestName, quote(digest), err)
			return
		}
		img, err := parseImage(url, digest)
		if err != nil {
			s.problem("%sresult %s %s: %v", scope, urlName, quote(url), err)
			return
		}
		img.Source = src
		s.addImage(img)
	})
	if legacy {
		s.pairs(scope, rs, artifactURISuffix, artifactDigestSuffix, func(src, uriName, uri, digestName, digest string) {
			if err := checkURI(uri); err != nil {
				s.problem("%sresult %s %s: %v", scope, uriName, quote(uri), err)
				return
			}
			alg, hex, err := parseDigest(digest)
			if err != nil {
				s.problem("%sresult %s %s: %v", scope, digestName, quote(digest), err)
				return
			}
			s.addLegacy(Artifact{URI: uri, Digest: map[string]string{alg: hex}, Source: src})
		})
	}
	for _, r := range rs {
		switch {
		case r.Name == imagesName:
			s.imageList(scope, r)
		case strings.HasSuffix(r.Name, outputsSuffix):
			s.artifactOutput(scope, r, legacy)
		}
	}
}

// pairs joins <marker><uriSuffix> and <marker><digestSuffix> string results,
// as Chains' structuredSignableExtractor does, calling found for each whole
// pair in the order its first half appears. Empty values are absent (Chains
// skips them); a half without its other half is a problem.
func (s *scan) pairs(scope string, rs []Result, uriSuffix, digestSuffix string, found func(src, uriName, uri, digestName, digest string)) {
	type pair struct{ uriName, uri, digestName, digest string }
	var order []string
	byMarker := map[string]*pair{}
	for _, r := range rs {
		var marker string
		isURI := strings.HasSuffix(r.Name, uriSuffix)
		switch {
		case isURI:
			marker = strings.TrimSuffix(r.Name, uriSuffix)
		case strings.HasSuffix(r.Name, digestSuffix):
			marker = strings.TrimSuffix(r.Name, digestSuffix)
		default:
			continue
		}
		if t := valueType(r.Value); t != v1.ParamTypeString {
			s.problem("%sresult %s: an %s, not a string", scope, r.Name, t)
			continue
		}
		v := strings.TrimSpace(r.Value.StringVal)
		if v == "" {
			continue
		}
		p := byMarker[marker]
		if p == nil {
			p = &pair{uriName: marker + uriSuffix, digestName: marker + digestSuffix}
			byMarker[marker] = p
			order = append(order, marker)
		}
		if isURI {
			p.uri = v
		} else {
			p.digest = v
		}
	}
	for _, m := range order {
		p := byMarker[m]
		switch {
		case p.digest == "":
			s.problem("%sresult %s %s: no %s result to go with it", scope, p.uriName, quote(p.uri), p.digestName)
		case p.uri == "":
			s.problem("%sresult %s %s: no %s result to go with it", scope, p.digestName, quote(p.digest), p.uriName)
		default:
			found(scope+"result "+p.uriName+"/"+p.digestName, p.uriName, p.uri, p.digestName, p.digest)
		}
	}
}

// imageList reads IMAGES: image references by digest, separated by commas or
// newlines.
func (s *scan) imageList(scope string, r Result) {
	if t := valueType(r.Value); t != v1.ParamTypeString {
		s.problem("%sresult %s: an %s, not a string", scope, r.Name, t)
		return
	}
	for entry := range strings.FieldsFuncSeq(r.Value.StringVal, func(c rune) bool { return c == ',' || c == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		repo, digest, ok := strings.Cut(entry, "@")
		if !ok {
			s.problem("%sresult %s entry %s: not <image>@sha256:<hex>", scope, r.Name, quote(entry))
			continue
		}
		if err := checkImageDigest(digest); err != nil {
			s.problem("%sresult %s entry %s: %v", scope, r.Name, quote(entry), err)
			continue
		}
		img, err := parseImage(repo, digest)
		if err != nil {
			s.problem("%sresult %s entry %s: %v", scope, r.Name, quote(entry), err)
			continue
		}
		img.Source = scope + "result " + r.Name
		s.addImage(img)
	}
}

// artifactOutput reads a *ARTIFACT_OUTPUTS object {uri, digest,
// isBuildArtifact}. Chains' v2alpha4 makes it a subject only when
// isBuildArtifact is exactly "true"; its older formats make every one a
// subject.
func (s *scan) artifactOutput(scope string, r Result, legacy bool) {
	src := scope + "result " + r.Name
	obj, err := objectValue(r.Value)
	if err != nil {
		s.problem("%s: %v", src, err)
		return
	}
	build := obj[isBuildArtifactKey] == "true"
	if v, ok := obj[isBuildArtifactKey]; ok && !build && v != "false" {
		s.problem("%s: %s %s is not \"true\", so it is not a subject", src, isBuildArtifactKey, quote(v))
	}
	if !build && !legacy {
		return
	}
	uri, alg, hex, err := uriDigest(obj)
	if err != nil {
		s.problem("%s: %v", src, err)
		return
	}
	a := Artifact{URI: uri, Digest: map[string]string{alg: hex}, Source: src}
	switch {
	case !build:
		s.addLegacy(a)
	case alg == "sha256" && namesRegistry(uri):
		// Chains signs a build artifact that names an image as an image.
		if img, err := parseImage(uri, alg+":"+hex); err == nil {
			img.Source = src
			s.addImage(img)
			return
		}
		s.addArtifact(a)
	default:
		s.addArtifact(a)
	}
}

// stepInputs reads what a TaskRun's steps name as inputs: each step's
// CHAINS-GIT_* results, then every step's *ARTIFACT_INPUTS (Chains'
// FromStepActionsResults order).
func (s *scan) stepInputs(scope string, tr *v1.TaskRun) {
	for _, st := range tr.Status.Steps {
		s.git(scope+"step "+st.Name+"/", st.Name, gitHints(nil, nil, TaskRunResults(st.Results)))
	}
	for _, st := range tr.Status.Steps {
		s.resultInputs(scope+"step "+st.Name+"/", st.Name, TaskRunResults(st.Results))
	}
}

// taskInputs reads a TaskRun's own inputs: CHAINS-GIT_* (task param
// defaults, overridden by the run's params, overridden by its results), then
// its *ARTIFACT_INPUTS (Chains' FromTaskParamsAndResults).
func (s *scan) taskInputs(scope string, tr *v1.TaskRun) {
	var defaults []v1.ParamSpec
	if tr.Status.TaskSpec != nil {
		defaults = tr.Status.TaskSpec.Params
	}
	results := TaskRunResults(tr.Status.Results)
	s.git(scope, "", gitHints(defaults, tr.Spec.Params, results))
	s.resultInputs(scope, "", results)
}

func (s *scan) statusInputs(scope string, tr *v1.TaskRun) {
	if tr.Status.Artifacts == nil {
		return
	}
	for _, art := range tr.Status.Artifacts.Inputs {
		for i, v := range art.Values {
			src := fmt.Sprintf("%sstatus.artifacts input %q", scope, art.Name)
			if a, ok := s.artifactValue(src, i, v); ok {
				s.addInput(a)
			}
		}
	}
}

// resultInputs reads *ARTIFACT_INPUTS objects {uri, digest}.
func (s *scan) resultInputs(scope, step string, rs []Result) {
	for _, r := range rs {
		if !strings.HasSuffix(r.Name, inputsSuffix) {
			continue
		}
		src := scope + "result " + r.Name
		obj, err := objectValue(r.Value)
		if err != nil {
			s.problem("%s: %v", src, err)
			continue
		}
		uri, alg, hex, err := uriDigest(obj)
		if err != nil {
			s.problem("%s: %v", src, err)
			continue
		}
		s.addInput(Artifact{URI: uri, Digest: map[string]string{alg: hex}, Source: src, Step: step})
	}
}

// gitHint is a CHAINS-GIT_URL or CHAINS-GIT_COMMIT value and where it came
// from.
type gitHint struct{ value, where string }

type gitPair struct{ url, commit gitHint }

// gitHints picks CHAINS-GIT_URL and CHAINS-GIT_COMMIT as Chains does: param
// defaults, overridden by params, overridden by results.
func gitHints(defaults []v1.ParamSpec, params v1.Params, results []Result) gitPair {
	var g gitPair
	set := func(n string, v gitHint) {
		switch n {
		case gitURLName:
			g.url = v
		case gitCommitName:
			g.commit = v
		}
	}
	for _, p := range defaults {
		if p.Default != nil {
			set(p.Name, gitHint{p.Default.StringVal, "param default"})
		}
	}
	for _, p := range params {
		set(p.Name, gitHint{p.Value.StringVal, "param"})
	}
	for _, r := range results {
		set(r.Name, gitHint{r.Value.StringVal, "result"})
	}
	return g
}

// git turns CHAINS-GIT_URL/CHAINS-GIT_COMMIT into Chains' material: the URL
// as git+<url>.git (SPDX's form), the commit as its sha1 digest.
//
// Chains takes both values as written; here they are trimmed and the commit
// must be a commit ID (40 lower-case hex digits, or 64 for a SHA-256
// repository, recorded as sha256), since anything else is no digest.
func (s *scan) git(scope, step string, g gitPair) {
	url, commit := g.url, g.commit
	u, c := strings.TrimSpace(url.value), strings.TrimSpace(commit.value)
	switch {
	case u == "" && c == "":
		return
	case c == "":
		s.problem("%s%s %s %s: no %s to go with it", scope, url.where, gitURLName, quote(u), gitCommitName)
		return
	case u == "":
		s.problem("%s%s %s %s: no %s to go with it", scope, commit.where, gitCommitName, quote(c), gitURLName)
		return
	}
	if err := checkURI(u); err != nil {
		s.problem("%s%s %s %s: %v", scope, url.where, gitURLName, quote(u), err)
		return
	}
	alg := "sha1"
	switch {
	case isLowerHex(c, 40):
	case isLowerHex(c, 64):
		alg = "sha256"
	default:
		s.problem("%s%s %s %s: not a commit ID (40 or 64 lower-case hex digits)", scope, commit.where, gitCommitName, quote(c))
		return
	}
	if !strings.HasPrefix(u, "git+") {
		u = "git+" + u
	}
	if !strings.HasSuffix(u, ".git") {
		u += ".git"
	}
	src := scope + url.where + " " + gitURLName + ", " + commit.where + " " + gitCommitName
	s.addInput(Artifact{URI: u, Digest: map[string]string{alg: c}, Source: src, Step: step})
}

// artifactValue checks one TEP-0147 artifact value: a URI and at least one
// digest, every digest valid (a value with a bad one is skipped whole).
func (s *scan) artifactValue(src string, i int, v v1.ArtifactValue) (Artifact, bool) {
	where := fmt.Sprintf("%s value %d", src, i)
	if err := checkURI(v.Uri); err != nil {
		s.problem("%s uri %s: %v", where, quote(v.Uri), err)
		return Artifact{}, false
	}
	if len(v.Digest) == 0 {
		s.problem("%s %s: no digest", where, quote(v.Uri))
		return Artifact{}, false
	}
	d := map[string]string{}
	for alg, hex := range v.Digest {
		a, h, err := parseDigest(string(alg) + ":" + hex)
		if err != nil {
			s.problem("%s %s digest %s: %v", where, quote(v.Uri), quote(string(alg)+":"+hex), err)
			return Artifact{}, false
		}
		d[a] = h
	}
	return Artifact{URI: v.Uri, Digest: d, Source: src}, true
}

func objectValue(v v1.ParamValue) (map[string]string, error) {
	if t := valueType(v); t != v1.ParamTypeObject {
		return nil, fmt.Errorf("a %s, not an object with uri and digest", t)
	}
	return v.ObjectVal, nil
}

// uriDigest reads {uri, digest} of an object hint.
func uriDigest(obj map[string]string) (uri, alg, hex string, err error) {
	uri = obj["uri"]
	if err := checkURI(uri); err != nil {
		return "", "", "", fmt.Errorf("uri %s: %w", quote(uri), err)
	}
	if obj["digest"] == "" {
		return "", "", "", errors.New("no digest")
	}
	alg, hex, err = parseDigest(obj["digest"])
	if err != nil {
		return "", "", "", fmt.Errorf("digest %s: %w", quote(obj["digest"]), err)
	}
	return uri, alg, hex, nil
}

// hexLen are the algorithms Chains accepts (go-digest's sha256, sha384,
// sha512, and sha1 for git) and their hex lengths.
var hexLen = map[string]int{"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}

// parseDigest reads "<algorithm>:<hex>" as Chains' ParseDigest does: the
// algorithm case-insensitive, both parts trimmed, the hex lower-case of the
// algorithm's length.
func parseDigest(d string) (alg, hex string, err error) {
	parts := strings.Split(d, ":")
	if len(parts) != 2 {
		return "", "", errors.New("not <algorithm>:<hex>")
	}
	alg = strings.ToLower(strings.TrimSpace(parts[0]))
	hex = strings.TrimSpace(parts[1])
	n, ok := hexLen[alg]
	if !ok {
		return "", "", fmt.Errorf("unsupported algorithm %s (want sha1, sha256, sha384 or sha512)", quote(alg))
	}
	if !isLowerHex(hex, n) {
		return "", "", fmt.Errorf("a %s digest is %d lower-case hex digits", alg, n)
	}
	return alg, hex, nil
}

// checkImageDigest: an image digest is sha256 (what go-containerregistry,
// and so Chains, accepts for an image by digest).
func checkImageDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || strings.Contains(hex, ":") {
		return errors.New("not <algorithm>:<hex>")
	}
	if alg != "sha256" {
		return fmt.Errorf("an image digest is sha256, not %s", quote(alg))
	}
	if !isLowerHex(hex, 64) {
		return errors.New("a sha256 digest is 64 lower-case hex digits")
	}
	return nil
}

// parseImage names an image as Chains does: go-containerregistry's digest
// reference, a tag dropped, the repository normalized. Unlike Chains, a URL
// (scheme://…) is refused: go-containerregistry reads
// "https://example.com/app" as a repository, which no registry serves.
func parseImage(ref, digest string) (Image, error) {
	if err := checkURI(ref); err != nil {
		return Image{}, err
	}
	if strings.Contains(ref, "@") {
		return Image{}, errors.New("already has a digest; name the repository only")
	}
	if strings.Contains(ref, "://") {
		return Image{}, errors.New("not an image reference: a URL, not <registry>/<repository>")
	}
	d, err := name.NewDigest(ref + "@" + digest)
	if err != nil {
		return Image{}, fmt.Errorf("not an image reference: %w", err)
	}
	return Image{Repository: d.Repository.Name(), Digest: d.DigestStr()}, nil
}

// namesRegistry says whether uri starts with a registry host (a dot or a
// port in it, or localhost), as a qualified image reference does.
//
// Chains treats every *ARTIFACT_OUTPUTS build artifact that parses as an
// image reference as an image, so "dist/app.tar.gz" becomes
// index.docker.io/dist/app.tar.gz, whose signing then fails. Here only a
// reference naming its registry is an image; the rest are artifacts by URI
// (Chains' subject for them too).
func namesRegistry(uri string) bool {
	host, _, ok := strings.Cut(uri, "/")
	return ok && (strings.ContainsAny(host, ".:") || host == "localhost")
}

func checkURI(u string) error {
	switch {
	case u == "":
		return errors.New("empty")
	case len(u) > MaxValueLen:
		return fmt.Errorf("longer than %d bytes", MaxValueLen)
	case strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("contains spaces or control characters")
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// quote quotes a value for a problem, clipped: values are user input.
func quote(v string) string {
	const max = 80
	if len(v) > max {
		return strconv.Quote(v[:max]) + "…"
	}
	return strconv.Quote(v)
}
