// Tests of signet-tekton's Kubernetes manifests: every document decodes
// into its typed Kubernetes object with no unknown field, the RBAC grants
// exactly what the controller does with the API, the ConfigMap holds
// exactly the controller's keys with their defaults, the Deployment is
// what its comments promise, and, on a real kube-apiserver with RBAC on,
// the ServiceAccount can do each thing the controller needs and nothing
// tried beyond it.
package manifests_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/tekton/settings"
)

const (
	namespace      = "signet-tekton"
	serviceAccount = "signet-tekton"
	configMapName  = "signet-tekton-config" // the controller's --config default
	leaseName      = "signet-tekton"        // the controller's --lease-name default
	tokenPath      = "/var/run/sigstore/cosign/oidc-token"
	optionalDir    = "optional"
)

// wantConfigKeys is every key of the controller's ConfigMap with its
// default, from the controller's own settings (tekton/settings Keys): the
// ConfigMap must hold exactly these, each written out with its default.
func wantConfigKeys() map[string]string {
	out := map[string]string{}
	for _, k := range settings.Keys {
		out[k.Name] = k.Default
	}
	return out
}

// controllerFlags are the flags of signet-tekton (tekton/cmd/signet-tekton)
// as its --help lists them, from the binary built here: the Deployment may
// pass only these.
func controllerFlags(t *testing.T) []string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "signet-tekton")
	build := exec.Command("go", "build", "-o", bin, "./tekton/cmd/signet-tekton")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tekton/cmd/signet-tekton: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("signet-tekton --help: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)[ \t]`)
	var flags []string
	for _, l := range strings.Split(string(out), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			flags = append(flags, m[1])
		}
	}
	if len(flags) < 10 {
		t.Fatalf("signet-tekton --help lists %d flags; the output was not understood:\n%s", len(flags), out)
	}
	return flags
}

// object is one decoded document.
type object struct {
	file, kind, name, namespace string
	raw                         []byte // the document as JSON
	obj                         any    // the typed object
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.kind, o.namespace, o.name, o.file)
}

// newTyped returns the typed object for a manifest's apiVersion and kind:
// the kinds the manifests may hold.
func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, nil
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
		return &admissionv1.ValidatingAdmissionPolicy{}, nil
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
		return &admissionv1.ValidatingAdmissionPolicyBinding{}, nil
	}
	return nil, fmt.Errorf("kind %s of %s is not one the manifests should hold (add it to newTyped if it belongs)", kind, apiVersion)
}

// decodeStrict decodes JSON into v as the apiserver's strict field
// validation does (sigs.k8s.io/json): an unknown field, a field spelled in
// another case, or a duplicate field is an error.
func decodeStrict(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeStream splits a YAML stream into documents and decodes each into
// its typed object.
func decodeStream(file string, data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // only comments
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		obj, err := newTyped(head.APIVersion, head.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if err := decodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("%s: document %d (%s %s): %w", file, i, head.Kind, head.Metadata.Name, err)
		}
		if head.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: document %d (%s) has no metadata.name", file, i, head.Kind)
		}
		out = append(out, object{file: file, kind: head.Kind, name: head.Metadata.Name, namespace: head.Metadata.Namespace, raw: js, obj: obj})
	}
}

// manifest is every document of the YAML files in dir (not below it).
type manifest struct {
	files map[string][]byte // file name -> contents
	objs  []object
}

func load(t testing.TB, dir string) manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	sort.Strings(files) // the order kubectl apply -f DIR uses
	m := manifest{files: map[string][]byte{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeStream(filepath.Base(f), data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Fatalf("%s holds no object", f)
		}
		m.files[filepath.Base(f)] = data
		m.objs = append(m.objs, objs...)
	}
	return m
}

func (m manifest) all(kind string) []object {
	var out []object
	for _, o := range m.objs {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifest) one(t testing.TB, kind string) object {
	t.Helper()
	objs := m.all(kind)
	if len(objs) != 1 {
		t.Fatalf("%d objects of kind %s, want 1: %v", len(objs), kind, objs)
	}
	return objs[0]
}

var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

func TestManifestsDecode(t *testing.T) {
	for _, dir := range []string{".", optionalDir} {
		m := load(t, dir)
		seen := map[string]object{}
		for _, o := range m.objs {
			key := o.kind + "/" + o.namespace + "/" + o.name
			if prev, ok := seen[key]; ok {
				t.Errorf("%v and %v are the same object", prev, o)
			}
			seen[key] = o
			switch {
			case clusterScoped[o.kind] && o.namespace != "":
				t.Errorf("%v: a cluster-scoped object with a namespace", o)
			case !clusterScoped[o.kind] && o.namespace != namespace:
				// Never "default" by omission: everything namespaced is the controller's.
				t.Errorf("%v: namespace %q, want %q", o, o.namespace, namespace)
			}
			labels := metaLabels(t, o)
			if labels["app.kubernetes.io/name"] != "signet-tekton" || labels["app.kubernetes.io/part-of"] != "signet" {
				t.Errorf("%v: labels %v lack app.kubernetes.io/name=signet-tekton, part-of=signet", o, labels)
			}
		}
	}
}

func metaLabels(t testing.TB, o object) map[string]string {
	var m struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(o.raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Metadata.Labels
}

// TestDecodeRefusesMistakes proves the decoding above can fail: a typo,
// a field in the wrong case, a duplicate key and an unknown kind.
func TestDecodeRefusesMistakes(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: signet-tekton}\nspec: {replica: 2}\n",
		"wrong case":    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {Name: x, namespace: signet-tekton}\n",
		"duplicate key": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: signet-tekton}\ndata: {a: b, a: c}\n",
		"unknown kind":  "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: signet-tekton}\n",
		"nested typo":   "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: x, namespace: signet-tekton}\nrules: [{apiGroups: [''], resource: [secrets], verbs: [get]}]\n",
	} {
		if _, err := decodeStream(name, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// grant is one (scope, apiGroup, resource, resourceName, verb) an RBAC rule
// gives the ServiceAccount; scope is "cluster" for a ClusterRole bound by a
// ClusterRoleBinding, else the RoleBinding's namespace; resourceName is ""
// for any.
type grant struct{ scope, group, resource, name, verb string }

func (g grant) String() string {
	r := g.resource
	if g.name != "" {
		r += "/" + g.name
	}
	if g.group != "" {
		r = g.group + ":" + r
	}
	return fmt.Sprintf("%s %s in %s", g.verb, r, g.scope)
}

// expand lists what rules grant in scope, one entry per combination.
func expand(scope string, rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					for _, v := range r.Verbs {
						out = append(out, grant{scope, g, res, n, v})
					}
				}
			}
		}
	}
	return out
}

// grants is everything m's bindings give the controller's ServiceAccount.
// Every binding must name only that account and a role m defines.
func grants(t *testing.T, m manifest) []grant {
	t.Helper()
	clusterRoles := map[string][]rbacv1.PolicyRule{}
	roles := map[string][]rbacv1.PolicyRule{} // namespace/name
	for _, o := range m.all("ClusterRole") {
		cr := o.obj.(*rbacv1.ClusterRole)
		if cr.AggregationRule != nil {
			t.Errorf("%v: an aggregated ClusterRole grants whatever matches its selector", o)
		}
		clusterRoles[o.name] = cr.Rules
	}
	for _, o := range m.all("Role") {
		roles[o.namespace+"/"+o.name] = o.obj.(*rbacv1.Role).Rules
	}
	checkSubjects := func(o object, subjects []rbacv1.Subject) {
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}}
		if !slices.Equal(subjects, want) {
			t.Errorf("%v binds %+v, want only %+v", o, subjects, want)
		}
	}
	var out []grant
	bound := map[string]bool{}
	for _, o := range m.all("ClusterRoleBinding") {
		b := o.obj.(*rbacv1.ClusterRoleBinding)
		checkSubjects(o, b.Subjects)
		rules, ok := clusterRoles[b.RoleRef.Name]
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.APIGroup != rbacv1.GroupName || !ok {
			t.Errorf("%v refers to %+v, not a ClusterRole of these manifests", o, b.RoleRef)
			continue
		}
		bound["ClusterRole/"+b.RoleRef.Name] = true
		out = append(out, expand("cluster", rules)...)
	}
	for _, o := range m.all("RoleBinding") {
		b := o.obj.(*rbacv1.RoleBinding)
		checkSubjects(o, b.Subjects)
		var rules []rbacv1.PolicyRule
		var ok bool
		switch b.RoleRef.Kind {
		case "Role":
			rules, ok = roles[o.namespace+"/"+b.RoleRef.Name]
			bound["Role/"+o.namespace+"/"+b.RoleRef.Name] = true
		case "ClusterRole":
			rules, ok = clusterRoles[b.RoleRef.Name]
			bound["ClusterRole/"+b.RoleRef.Name] = true
		}
		if !ok || b.RoleRef.APIGroup != rbacv1.GroupName {
			t.Errorf("%v refers to %+v, not a role of these manifests", o, b.RoleRef)
			continue
		}
		out = append(out, expand(o.namespace, rules)...)
	}
	for name := range clusterRoles {
		if !bound["ClusterRole/"+name] {
			t.Errorf("ClusterRole %s is bound by nothing", name)
		}
	}
	for name := range roles {
		if !bound["Role/"+name] {
			t.Errorf("Role %s is bound by nothing", name)
		}
	}
	return out
}

// wantDefaultGrants is exactly what the default install gives the
// controller, from what it does with the API (see 200-clusterrole.yaml,
// 200-role.yaml).
func wantDefaultGrants() []grant {
	var g []grant
	add := func(scope, group, resource, name string, verbs ...string) {
		for _, v := range verbs {
			g = append(g, grant{scope, group, resource, name, v})
		}
	}
	add("cluster", "tekton.dev", "taskruns", "", "get", "list", "watch", "patch")
	add("cluster", "tekton.dev", "pipelineruns", "", "get", "list", "watch", "patch")
	add("cluster", "", "events", "", "create", "patch")
	add("cluster", "events.k8s.io", "events", "", "create", "patch")
	add("cluster", "", "serviceaccounts", "", "get")
	add("cluster", "", "secrets", "", "get")
	add(namespace, "", "configmaps", configMapName, "get", "list", "watch")
	add(namespace, "coordination.k8s.io", "leases", leaseName, "get", "update")
	add(namespace, "coordination.k8s.io", "leases", "", "create")
	return g
}

// wantOptionalGrants is what optional/ adds.
var wantOptionalGrants = []grant{{"cluster", "", "serviceaccounts/token", "", "create"}}

func sameGrants(t *testing.T, what string, got, want []grant) {
	t.Helper()
	str := func(gs []grant) []string {
		var s []string
		for _, g := range gs {
			s = append(s, g.String())
		}
		sort.Strings(s)
		return slices.Compact(s)
	}
	g, w := str(got), str(want)
	for _, x := range g {
		if !slices.Contains(w, x) {
			t.Errorf("%s grants %s, which the controller does not need", what, x)
		}
	}
	for _, x := range w {
		if !slices.Contains(g, x) {
			t.Errorf("%s does not grant %s, which the controller needs", what, x)
		}
	}
}

// violations holds whatever the expected lists say: the rules any review
// of a controller's RBAC would refuse.
func violations(gs []grant, tokensAllowed bool) []string {
	var out []string
	bad := func(g grant, why string) { out = append(out, fmt.Sprintf("%v: %s", g, why)) }
	for _, g := range gs {
		switch {
		case strings.Contains(g.group+g.resource+g.name+g.verb, "*"):
			bad(g, "a wildcard")
		case slices.Contains([]string{"escalate", "bind", "impersonate", "approve", "sign", "deletecollection", "delete"}, g.verb):
			bad(g, "the controller deletes nothing and grants nothing")
		case g.resource == "secrets" && g.verb != "get":
			bad(g, "secrets may only be read by name")
		case g.scope == "cluster" && g.verb == "create" && g.resource != "events" && !(tokensAllowed && g.resource == "serviceaccounts/token"):
			bad(g, "the only cluster-wide create is of events (and, in optional/, tokens)")
		case g.resource == "serviceaccounts/token" && !tokensAllowed:
			bad(g, "token requests belong in optional/ only")
		case g.verb == "update" && g.name == "":
			bad(g, "an update must name its object")
		case g.group == "" && slices.Contains([]string{"pods", "pods/exec", "nodes", "namespaces", "configmaps"}, g.resource) && g.scope == "cluster":
			bad(g, "not cluster-wide")
		}
	}
	return out
}

func checkInvariants(t *testing.T, what string, gs []grant, tokensAllowed bool) {
	t.Helper()
	for _, v := range violations(gs, tokensAllowed) {
		t.Errorf("%s: %s", what, v)
	}
}

func TestRBACLeastPrivilege(t *testing.T) {
	def := grants(t, load(t, "."))
	sameGrants(t, "the default install", def, wantDefaultGrants())
	checkInvariants(t, "the default install", def, false)

	opt := grants(t, load(t, optionalDir))
	sameGrants(t, optionalDir+"/", opt, wantOptionalGrants)
	checkInvariants(t, optionalDir+"/", opt, true)

	// The rules' non-resource side: nothing.
	for _, dir := range []string{".", optionalDir} {
		m := load(t, dir)
		for _, o := range append(m.all("ClusterRole"), m.all("Role")...) {
			var rules []rbacv1.PolicyRule
			if cr, ok := o.obj.(*rbacv1.ClusterRole); ok {
				rules = cr.Rules
			} else {
				rules = o.obj.(*rbacv1.Role).Rules
			}
			for _, r := range rules {
				if len(r.NonResourceURLs) > 0 {
					t.Errorf("%v grants non-resource URLs %v", o, r.NonResourceURLs)
				}
				if len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
					t.Errorf("%v: rule %+v grants nothing (a typo?)", o, r)
				}
			}
		}
	}
}

// TestRBACInvariantsCatchWidening proves the checks above can fail.
func TestRBACInvariantsCatchWidening(t *testing.T) {
	for _, bad := range [][]grant{
		{{"cluster", "", "secrets", "", "list"}},
		{{"cluster", "", "pods", "", "create"}},
		{{"cluster", "tekton.dev", "*", "", "get"}},
		{{"cluster", "tekton.dev", "taskruns", "", "delete"}},
		{{"cluster", "", "serviceaccounts/token", "", "create"}},
		{{namespace, "coordination.k8s.io", "leases", "", "update"}},
	} {
		if v := violations(bad, false); len(v) == 0 {
			t.Errorf("violations accepted %v", bad)
		} else {
			t.Log(v)
		}
	}
}

func TestConfigMap(t *testing.T) {
	m := load(t, ".")
	o := m.one(t, "ConfigMap")
	cm := o.obj.(*corev1.ConfigMap)
	if cm.Name != configMapName || cm.Namespace != namespace {
		t.Errorf("ConfigMap %s/%s, want %s/%s (the controller's --config and --config-namespace defaults)", cm.Namespace, cm.Name, namespace, configMapName)
	}
	want := wantConfigKeys()
	if len(want) < 12 {
		t.Fatalf("settings.Keys lists %d keys; expected Chains' nine and signet's three at least", len(want))
	}
	// The controller takes it, as it is.
	if _, err := settings.Parse(cm.Data); err != nil {
		t.Errorf("the controller refuses the ConfigMap: %v", err)
	}
	if len(cm.BinaryData) > 0 {
		t.Errorf("binaryData %v: the controller reads data only", cm.BinaryData)
	}
	for k, v := range cm.Data {
		def, ok := want[k]
		switch {
		case !ok:
			t.Errorf("key %q is not one the controller takes (it would refuse the ConfigMap)", k)
		case v != def:
			t.Errorf("key %q = %q, want its default %q", k, v, def)
		}
	}
	for k := range want {
		if _, ok := cm.Data[k]; !ok {
			t.Errorf("key %q (default %q) is not written out", k, want[k])
		}
	}
	// A comment on every key: the line before each key is a comment.
	lines := strings.Split(string(m.files[o.file]), "\n")
	for i, l := range lines {
		key, _, ok := strings.Cut(strings.TrimSpace(l), ":")
		if _, isKey := want[key]; !ok || !isKey || !strings.HasPrefix(l, "  ") {
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("%s line %d: key %s has no comment above it", o.file, i+1, key)
		}
	}
}

func TestDeployment(t *testing.T) {
	m := load(t, ".")
	o := m.one(t, "Deployment")
	d := o.obj.(*appsv1.Deployment)
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 (leader election: see the file's comment)", d.Spec.Replicas)
	}
	if spec.ServiceAccountName != serviceAccount {
		t.Errorf("serviceAccountName %q, want %q", spec.ServiceAccountName, serviceAccount)
	}
	sel := d.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels %v", k, v, d.Spec.Template.Labels)
		}
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != "ko://github.com/signet-dev/signet/tekton/cmd/signet-tekton" {
		t.Errorf("image %q, want ko's reference to ./tekton/cmd/signet-tekton", c.Image)
	}

	// Flags: only the controller's, the server a placeholder, the metrics
	// address on the container port the probes use.
	known := controllerFlags(t)
	flags := map[string]string{}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("arg %q: write flags as --name=value", a)
			continue
		}
		if !slices.Contains(known, name) {
			t.Errorf("flag --%s is not one of signet-tekton's", name)
		}
		flags[name] = val
	}
	if flags["server"] == "" && flags["signing-config"] == "" {
		t.Error("neither --server nor --signing-config: the controller has nowhere to sign")
	}
	if flags["identity-token"] != "" && flags["identity-token"] != tokenPath {
		t.Errorf("--identity-token=%s, but the projected token is at %s", flags["identity-token"], tokenPath)
	}
	if c := flags["config"]; c != "" && c != configMapName {
		t.Errorf("--config=%s, but the ConfigMap is %s", c, configMapName)
	}
	if l := flags["lease-name"]; l != "" && l != leaseName {
		t.Errorf("--lease-name=%s, but the Role grants the Lease %s", l, leaseName)
	}
	metricsPort := int32(9090)
	if a, ok := flags["metrics-addr"]; ok {
		if a != ":9090" {
			t.Errorf("--metrics-addr=%s; the port, probes and Service expect :9090", a)
		}
	}
	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "metrics" {
			port = &c.Ports[i]
		}
	}
	if port == nil || port.ContainerPort != metricsPort {
		t.Fatalf("container port %+v, want metrics on %d", port, metricsPort)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" ||
			(p.HTTPGet.Port.String() != "metrics" && p.HTTPGet.Port.IntValue() != int(metricsPort)) {
			t.Errorf("%s probe %+v, want GET /healthz on the metrics port", name, p)
		}
	}

	// The environment the controller reads.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for name, path := range map[string]string{"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"} {
		e := env[name]
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("env %s = %+v, want the downward API's %s", name, e, path)
		}
	}

	// Resources.
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory limit %s, want 256Mi", lim.String())
	}
	if req := c.Resources.Requests[corev1.ResourceMemory]; req.IsZero() || req.Cmp(c.Resources.Limits[corev1.ResourceMemory]) > 0 {
		t.Errorf("memory request %s: set, and at most the limit", req.String())
	}
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("no CPU request")
	}

	// Security.
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no pod or container securityContext")
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		t.Error("runAsNonRoot is not set")
	}
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		t.Error("the container overrides runAsNonRoot with false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and add nothing", sc.Capabilities)
	}
	seccomp := func(s *corev1.SeccompProfile) bool {
		return s != nil && s.Type == corev1.SeccompProfileTypeRuntimeDefault
	}
	if !seccomp(sc.SeccompProfile) && !(sc.SeccompProfile == nil && seccomp(psc.SeccompProfile)) {
		t.Errorf("seccomp %+v / %+v, want RuntimeDefault", psc.SeccompProfile, sc.SeccompProfile)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("host namespaces")
	}

	// The signing identity: a projected token, audience sigstore, 600 s,
	// at the path the controller reads.
	dir, file := filepath.Split(tokenPath)
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == filepath.Clean(dir) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("nothing mounted at %s", dir)
	}
	if !mount.ReadOnly {
		t.Errorf("the token volume is mounted writable")
	}
	var found bool
	for _, v := range spec.Volumes {
		if v.Name != mount.Name {
			continue
		}
		if v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil {
			t.Fatalf("volume %s is %+v, want one projected serviceAccountToken", v.Name, v.VolumeSource)
		}
		tok := v.Projected.Sources[0].ServiceAccountToken
		if tok.Audience != "sigstore" || tok.Path != file || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != 600 {
			t.Errorf("token %+v, want audience sigstore, path %s, expirationSeconds 600", tok, file)
		}
		found = true
	}
	if !found {
		t.Errorf("no volume %s", mount.Name)
	}
	// Nothing else writable but scratch.
	for _, v := range spec.Volumes {
		if v.HostPath != nil || v.Secret != nil {
			t.Errorf("volume %s: %+v", v.Name, v.VolumeSource)
		}
	}

	// The Service reaches the metrics port of these pods.
	svc := m.one(t, "Service").obj.(*corev1.Service)
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod labels", k, v)
		}
	}
	if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) != 1 ||
		(svc.Spec.Ports[0].TargetPort.String() != "metrics" && svc.Spec.Ports[0].TargetPort.IntValue() != int(metricsPort)) {
		t.Errorf("Service %+v does not target the metrics port", svc.Spec)
	}
	pdb := m.one(t, "PodDisruptionBudget").obj.(*policyv1.PodDisruptionBudget)
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("PodDisruptionBudget selector %s=%s does not match the pod labels", k, v)
		}
	}

	// The Role grants the names the controller uses.
	role := m.one(t, "Role").obj.(*rbacv1.Role)
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			for _, n := range r.ResourceNames {
				if (res == "configmaps" && n != configMapName) || (res == "leases" && n != leaseName) {
					t.Errorf("Role grants %s %s; the controller uses %s and %s", res, n, configMapName, leaseName)
				}
			}
		}
	}
}

// TestAdmissionPolicyMatchesServiceAccount: the policy applies to the
// controller's requests, whatever the manifests name it.
func TestAdmissionPolicyMatchesServiceAccount(t *testing.T) {
	m := load(t, ".")
	p := m.one(t, "ValidatingAdmissionPolicy").obj.(*admissionv1.ValidatingAdmissionPolicy)
	b := m.one(t, "ValidatingAdmissionPolicyBinding").obj.(*admissionv1.ValidatingAdmissionPolicyBinding)
	if b.Spec.PolicyName != p.Name || !slices.Equal(b.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
		t.Errorf("binding %+v does not deny by policy %s", b.Spec, p.Name)
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", namespace, serviceAccount)
	if len(p.Spec.MatchConditions) != 1 || !strings.Contains(p.Spec.MatchConditions[0].Expression, `"`+user+`"`) {
		t.Errorf("match conditions %+v do not name %s", p.Spec.MatchConditions, user)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionv1.Fail {
		t.Error("failurePolicy is not Fail")
	}
	for _, v := range p.Spec.Validations {
		if v.Reason == nil || *v.Reason != "Forbidden" {
			t.Errorf("validation %q: reason %v, want Forbidden (the controller takes Invalid for a deleted run)", v.Message, v.Reason)
		}
	}
}
