package controller_test

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/signet-dev/signet/tekton/settings"
)

// The tests below keep docs/tekton.md honest: its tables of ConfigMap keys,
// flags, metrics and annotations are compared with what the controller
// really takes, prints, serves and writes.

// doc reads docs/tekton.md.
func doc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(), "docs", "tekton.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is the text under a heading (the line as written, e.g. "## Flags")
// up to the next heading of the same or a higher level.
func section(t *testing.T, text, heading string) string {
	t.Helper()
	level := strings.IndexByte(heading, ' ')
	lines := strings.Split(text, "\n")
	start := slices.Index(lines, heading)
	if start < 0 {
		t.Fatalf("docs/tekton.md has no heading %q", heading)
	}
	end := len(lines)
	fenced := false
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "```") {
			fenced = !fenced
		}
		if n := len(lines[i]) - len(strings.TrimLeft(lines[i], "#")); !fenced && n > 0 && n <= level && strings.HasPrefix(lines[i][n:], " ") {
			end = i
			break
		}
	}
	return strings.Join(lines[start+1:end], "\n")
}

// table is the first Markdown table of text: its body rows, each cell
// trimmed, without the header and separator rows.
func table(t *testing.T, text, what string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		in = true
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 3 {
		t.Fatalf("docs/tekton.md: no table of %s found", what)
	}
	return rows[2:]
}

// code is the text of a cell that is one `code span`, else "".
func code(cell string) string {
	if len(cell) > 2 && cell[0] == '`' && cell[len(cell)-1] == '`' && !strings.Contains(cell[1:len(cell)-1], "`") {
		return cell[1 : len(cell)-1]
	}
	return ""
}

// (a) The ConfigMap's key table lists exactly settings.Keys, in that order,
// each with its default; the Chains keys and values it says are refused
// are refused.
func TestDocsConfigMapKeys(t *testing.T) {
	text := section(t, doc(t), "## The ConfigMap")
	var documented []string
	for _, row := range table(t, text, "ConfigMap keys") {
		key, def := code(row[0]), code(row[1])
		if key == "" || len(row) < 3 {
			t.Errorf("key table row %q: want | `key` | `default` | takes |", row)
			continue
		}
		documented = append(documented, key)
		i := slices.IndexFunc(settings.Keys, func(k settings.Key) bool { return k.Name == key })
		if i < 0 {
			t.Errorf("docs/tekton.md documents ConfigMap key %s, which the controller refuses as unknown", key)
			continue
		}
		if want := settings.Keys[i].Default; def != want {
			t.Errorf("docs/tekton.md gives %s the default %q; the controller's is %q", key, def, want)
		}
	}
	if !slices.Equal(documented, settings.Names()) {
		t.Errorf("docs/tekton.md's key table lists %v; settings.Keys (in documentation order) is %v", documented, settings.Names())
	}
	// The documented defaults are what an empty ConfigMap means.
	data := map[string]string{}
	for _, k := range settings.Keys {
		data[k.Name] = k.Default
	}
	if st, err := settings.Parse(data); err != nil || st != settings.Default() {
		t.Errorf("the documented defaults parse as %+v (%v), not as the defaults %+v", st, err, settings.Default())
	}

	refused := section(t, text, "### Keys and values signet refuses")
	keys := table(t, refused, "refused Chains keys")
	if len(keys) < 5 {
		t.Fatalf("only %d refused Chains keys documented", len(keys))
	}
	for _, row := range keys {
		key := code(row[0])
		_, err := settings.Parse(map[string]string{key: "x"})
		if key == "" || !errors.Is(err, settings.ErrUnknownKey) || !strings.Contains(err.Error(), "a Tekton Chains key") {
			t.Errorf("docs/tekton.md says the Chains key %q is refused as one; Parse says %v", row[0], err)
		}
	}
	// The table of refused values comes after the keys'.
	at := strings.Index(refused, "| key | value |")
	if at < 0 {
		t.Fatal(`docs/tekton.md: no table "| key | value | why |" of refused values`)
	}
	values := table(t, refused[at:], "refused values")
	for _, row := range values {
		key, value := code(row[0]), code(row[1])
		if _, err := settings.Parse(map[string]string{key: value}); key == "" || value == "" || err == nil {
			t.Errorf("docs/tekton.md says %s: %q is refused; Parse accepts it (%v)", key, value, err)
		}
	}
}

// helpFlags runs signet-tekton --help with env added and returns each flag
// it prints with its printed default ("" when none is printed).
func helpFlags(t *testing.T, env ...string) map[string]string {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, "--help")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POD_NAMESPACE=") && !strings.HasPrefix(kv, "POD_NAME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("signet-tekton --help: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)(?: [a-z0-9]+)?\s{2,}(.*)$`)
	def := regexp.MustCompile(`\(default ("[^"]*"|[^ :)]+)\)$`)
	flags := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		d := ""
		if dm := def.FindStringSubmatch(m[2]); dm != nil {
			d = strings.Trim(dm[1], `"`)
		}
		flags[m[1]] = d
	}
	if len(flags) < 10 {
		t.Fatalf("signet-tekton --help lists %d flags; the output was not understood:\n%s", len(flags), out)
	}
	return flags
}

// (b) The flag table lists exactly the flags --help prints, each with the
// default it prints; a default taken from the environment names the
// variable.
func TestDocsFlags(t *testing.T) {
	help := helpFlags(t)
	fromEnv := map[string]string{}
	for flag, d := range helpFlags(t, "POD_NAMESPACE=docs-test-namespace", "POD_NAME=docs-test-pod") {
		switch d {
		case "docs-test-namespace":
			fromEnv[flag] = "$POD_NAMESPACE"
		case "docs-test-pod":
			fromEnv[flag] = "$POD_NAME"
		}
	}
	if len(fromEnv) != 2 {
		t.Errorf("flags with defaults from POD_NAMESPACE and POD_NAME: %v; want two", fromEnv)
	}
	documented := map[string]bool{}
	for _, row := range table(t, section(t, doc(t), "## Flags"), "flags") {
		name, ok := strings.CutPrefix(code(row[0]), "--")
		if !ok || len(row) < 3 {
			t.Errorf("flag table row %q: want | `--flag` | default | meaning |", row)
			continue
		}
		if documented[name] {
			t.Errorf("--%s is documented twice", name)
		}
		documented[name] = true
		d, ok := help[name]
		switch {
		case !ok:
			t.Errorf("docs/tekton.md documents --%s, which signet-tekton --help does not list", name)
		case fromEnv[name] != "":
			if !strings.Contains(row[1], "`"+fromEnv[name]+"`") {
				t.Errorf("--%s defaults to %s; docs/tekton.md says %q", name, fromEnv[name], row[1])
			}
			if name == "config-namespace" && !strings.Contains(row[1], "`"+d+"`") {
				t.Errorf("--%s defaults to %q without POD_NAMESPACE; docs/tekton.md says %q", name, d, row[1])
			}
		case d != "" && !strings.Contains(row[1], "`"+d+"`"):
			t.Errorf("--%s defaults to %q; docs/tekton.md says %q", name, d, row[1])
		}
	}
	for name := range help {
		if !documented[name] {
			t.Errorf("signet-tekton --help lists --%s, which docs/tekton.md does not document", name)
		}
	}
}

// TestProfiling: --profiling serves Go's pprof on the metrics listener;
// without it the listener serves none (profiles reveal what the controller
// does to whoever reaches the port).
func TestProfiling(t *testing.T) {
	e := getEnv(t)
	status := func(p *proc) int {
		r, err := http.Get(p.metrics + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	off := e.controller(t, "profiling-off")
	if got := status(off); got != http.StatusNotFound {
		t.Errorf("without --profiling, /debug/pprof/cmdline answered %d; want 404", got)
	}
	off.stop(t)
	on := e.controller(t, "profiling-on", "--profiling")
	if got := status(on); got != http.StatusOK {
		t.Errorf("with --profiling, /debug/pprof/cmdline answered %d; want 200", got)
	}
}

// documentedMetric is one row of docs/tekton.md's metrics table.
type documentedMetric struct {
	name, typ string
	labels    []string
}

// (c) Every signet_tekton_ metric the running controller serves is in the
// metrics table with its type and labels, and every one documented is
// served. Runs that are signed, skipped and given up give each labelled
// metric its series.
func TestDocsMetrics(t *testing.T) {
	var docs []documentedMetric
	for _, row := range table(t, section(t, doc(t), "## Metrics"), "metrics") {
		if code(row[0]) == "" || len(row) < 4 {
			t.Errorf("metrics table row %q: want | `name` | type | labels | what |", row)
			continue
		}
		d := documentedMetric{name: code(row[0]), typ: row[1]}
		for _, l := range strings.Split(row[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				d.labels = append(d.labels, l)
			}
		}
		slices.Sort(d.labels)
		docs = append(docs, d)
	}

	e := getEnv(t)
	const ns = "docs-metrics"
	e.namespace(t, ns)
	e.config(t, map[string]string{"signet.max-attempts": "2"})
	p := e.controller(t, ns)
	_, digest := signedRef(t, e, "team/docs")
	repo := e.reg.Ref("team/docs")
	e.taskRun(t, ns, "signed", runSpec{results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": digest}})
	e.taskRun(t, ns, "failed", runSpec{failed: true, results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": digest}})
	e.taskRun(t, ns, "not-pushed", runSpec{results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": "sha256:" + strings.Repeat("0", 64)}})
	if ann := e.marked(t, "taskrun", ns, "signed", time.Minute); ann["signet.dev/signed"] != "true" {
		t.Fatalf("annotations of the signed run: %v", ann)
	}
	if ann := e.marked(t, "taskrun", ns, "not-pushed", time.Minute); ann["signet.dev/signed"] != "failed" {
		t.Fatalf("annotations of the run whose image is not in the registry: %v", ann)
	}
	waitFor(t, 30*time.Second, "the failed run to be skipped", func() bool {
		return p.metric(t, `signet_tekton_runs_skipped_total{kind="taskrun",reason="failed-run"}`) == 1
	})

	r, err := http.Get(p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	documented := map[string]bool{}
	for _, d := range docs {
		documented[d.name] = true
		f, ok := fams[d.name]
		if !ok {
			t.Errorf("%s is documented but not on /metrics", d.name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != d.typ {
			t.Errorf("%s is a %s on /metrics, documented as a %s", d.name, got, d.typ)
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			if !slices.Equal(labels, d.labels) {
				t.Errorf("%s has labels %v on /metrics, documented %v", d.name, labels, d.labels)
				break
			}
		}
	}
	var goMetrics, processMetrics bool
	for name := range fams {
		goMetrics = goMetrics || strings.HasPrefix(name, "go_")
		processMetrics = processMetrics || strings.HasPrefix(name, "process_")
		if strings.HasPrefix(name, "signet_tekton_") && !documented[name] {
			t.Errorf("%s is on /metrics but not in docs/tekton.md", name)
		}
	}
	if !goMetrics || !processMetrics {
		t.Errorf("Go collector present %v, process collector present %v; docs/tekton.md promises both", goMetrics, processMetrics)
	}
}

// (d) Every signet.dev/ annotation the controller's code names as a
// constant is in the annotation table, and the table names no other.
func TestDocsAnnotations(t *testing.T) {
	dir := filepath.Join(moduleRoot(), "tekton", "controller")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	inCode := map[string]string{} // annotation -> constant
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err == nil && strings.HasPrefix(s, "signet.dev/") {
						inCode[s] = vs.Names[i].Name
					}
				}
			}
		}
	}
	if len(inCode) < 5 {
		t.Fatalf("found %d signet.dev/ annotation constants in tekton/controller: %v", len(inCode), inCode)
	}
	documented := map[string]bool{}
	for _, row := range table(t, section(t, doc(t), "## Annotations"), "annotations") {
		a := code(row[0])
		if !strings.HasPrefix(a, "signet.dev/") || len(row) < 2 {
			t.Errorf("annotation table row %q: want | `signet.dev/…` | value |", row)
			continue
		}
		documented[a] = true
		if _, ok := inCode[a]; !ok {
			t.Errorf("docs/tekton.md documents the annotation %s, which the controller does not write", a)
		}
	}
	for a, name := range inCode {
		if !documented[a] {
			t.Errorf("the controller writes %s (%s), which docs/tekton.md does not document", a, name)
		}
	}
}
