package tuf

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/signet-dev/signet/server/storage"
)

// The key ceremony: the root and targets roles are signed offline, one key
// holder at a time, in a ceremony directory laid out as the published
// repository (N.root.json, N.targets.json, targets/<sha256>.<name>).
// Publish copies what is complete to the directory the server serves
// (tuf.dir); the server then holds only the online key, which signs the
// snapshot and the timestamp and re-signs them before they expire.

// Default expiries of what the ceremony signs: the root is re-signed
// yearly, the targets twice a year, each by the offline key holders.
const (
	DefaultRootExpiry    = 365 * 24 * time.Hour
	DefaultTargetsExpiry = 182 * 24 * time.Hour
)

// ErrNotSigned is metadata below a threshold of valid signatures.
var ErrNotSigned = errors.New("threshold not met")

// RoleKeys is the key set of one role and how many of them must sign.
type RoleKeys struct {
	Keys      []*metadata.Key
	Threshold int
}

// RootChange is what a root version sets: the roles given get exactly
// these keys (a rotation); the roles not given keep theirs.
type RootChange struct {
	Roles   map[string]*RoleKeys
	Expires time.Time
}

// Ceremony is a ceremony directory.
type Ceremony struct {
	Dir string
	Now func() time.Time
}

func (c *Ceremony) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Threshold is how far one threshold of a role is met.
type Threshold struct {
	// By is the root whose keys count: the metadata's own root, or for a
	// new root version also the one before it (TUF 5.3.4).
	By      string   `json:"by"`
	Have    int      `json:"have"`
	Want    int      `json:"want"`
	Signed  []string `json:"signedBy"`
	Missing []string `json:"mayStillSign"`
}

// RoleStatus is where the newest version of a role stands.
type RoleStatus struct {
	Role       string      `json:"role"`
	Version    int64       `json:"version"`
	File       string      `json:"file"`
	Expires    time.Time   `json:"expires"`
	Expired    bool        `json:"expired"`
	Complete   bool        `json:"complete"`
	Thresholds []Threshold `json:"thresholds"`
}

// Status is the ceremony directory's state.
type Status struct {
	Dir     string      `json:"dir"`
	Root    *RoleStatus `json:"root"`
	Targets *RoleStatus `json:"targets,omitempty"`
	// Keys are the newest root's roles: role → key IDs and threshold.
	Roles map[string]RoleKeyIDs `json:"roles"`
	// Ready says publish would succeed; Problems say why not.
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems"`
}

// RoleKeyIDs is a role's keys, by key ID, and threshold.
type RoleKeyIDs struct {
	KeyIDs    []string `json:"keyIds"`
	Threshold int      `json:"threshold"`
}

// Init writes 1.root.json, unsigned: root, targets and timestamp keys are
// required; the snapshot role takes the timestamp's keys when not given
// (both online).
func (c *Ceremony) Init(ch RootChange) (*Status, error) {
	files, err := readRepo(c.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if files != nil && len(files.roots) > 0 {
		return nil, fmt.Errorf("%s already holds a root (%d.root.json); make the next one with 'signet tuf root new-version'", c.Dir, files.latest(files.roots))
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.TIMESTAMP} {
		if ch.Roles[role] == nil {
			return nil, fmt.Errorf("a first root needs %s keys", role)
		}
	}
	if ch.Roles[metadata.SNAPSHOT] == nil {
		ch.Roles[metadata.SNAPSHOT] = ch.Roles[metadata.TIMESTAMP]
	}
	root := metadata.Root(ch.Expires)
	root.Signed.Keys = map[string]*metadata.Key{}
	if err := applyRoles(root, ch.Roles); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "targets"), 0o755); err != nil {
		return nil, err
	}
	if err := writeMeta(filepath.Join(c.Dir, "1.root.json"), root); err != nil {
		return nil, err
	}
	return c.Status()
}

// NewRootVersion writes N+1.root.json, unsigned, from a complete N.
func (c *Ceremony) NewRootVersion(ch RootChange) (*Status, error) {
	files, err := readRepo(c.Dir)
	if err != nil {
		return nil, err
	}
	if len(files.roots) == 0 {
		return nil, fmt.Errorf("%s holds no root; start with 'signet tuf init'", c.Dir)
	}
	if _, err := verifyRoots(files.roots); err != nil {
		return nil, fmt.Errorf("the newest root is not complete, so no version can follow it: %w", err)
	}
	v := files.latest(files.roots)
	root, err := metadata.Root().FromBytes(files.roots[v])
	if err != nil {
		return nil, err
	}
	root.Signed.Version = v + 1
	root.Signed.Expires = ch.Expires
	root.ClearSignatures()
	if err := applyRoles(root, ch.Roles); err != nil {
		return nil, err
	}
	if err := writeMeta(filepath.Join(c.Dir, fmt.Sprintf("%d.root.json", v+1)), root); err != nil {
		return nil, err
	}
	return c.Status()
}

// applyRoles gives each role its keys and drops keys no role names.
func applyRoles(root *metadata.Metadata[metadata.RootType], roles map[string]*RoleKeys) error {
	for role, rk := range roles {
		if _, ok := root.Signed.Roles[role]; !ok {
			return fmt.Errorf("no TUF role %q (root, targets, snapshot, timestamp)", role)
		}
		ids := []string{}
		for _, k := range rk.Keys {
			id, err := k.ID()
			if err != nil {
				return err
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			root.Signed.Keys[id] = k
		}
		if rk.Threshold < 1 || rk.Threshold > len(ids) {
			return fmt.Errorf("%s threshold %d with %d distinct keys: it must be 1 to %d", role, rk.Threshold, len(ids), len(ids))
		}
		sort.Strings(ids)
		root.Signed.Roles[role] = &metadata.Role{KeyIDs: ids, Threshold: rk.Threshold}
	}
	used := map[string]bool{}
	for _, r := range root.Signed.Roles {
		for _, id := range r.KeyIDs {
			used[id] = true
		}
	}
	for id := range root.Signed.Keys {
		if !used[id] {
			delete(root.Signed.Keys, id)
		}
	}
	return nil
}

// TargetFile makes the targets entry of a trust file, as Sigstore's
// root-signing repository lists it (sha256, length).
func TargetFile(name string, data []byte) (*metadata.TargetFiles, error) {
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	return tf, nil
}

// Targets writes the next targets version, unsigned, listing targets, and
// the target files under targets/.
func (c *Ceremony) Targets(targets map[string][]byte, expires time.Time) (*Status, error) {
	files, err := readRepo(c.Dir)
	if err != nil {
		return nil, err
	}
	if len(files.roots) == 0 {
		return nil, fmt.Errorf("%s holds no root; start with 'signet tuf init'", c.Dir)
	}
	if len(targets) == 0 {
		return nil, errors.New("no targets given")
	}
	t := metadata.Targets(expires)
	t.Signed.Version = files.latest(files.targets) + 1
	for name, data := range targets {
		if strings.ContainsAny(name, `/\`) || name == "" {
			return nil, fmt.Errorf("target name %q: a plain file name", name)
		}
		if t.Signed.Targets[name], err = TargetFile(name, data); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		if err := storage.WriteFileSync(filepath.Join(c.Dir, "targets", hex.EncodeToString(sum[:])+"."+name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if err := writeMeta(filepath.Join(c.Dir, fmt.Sprintf("%d.targets.json", t.Signed.Version)), t); err != nil {
		return nil, err
	}
	return c.Status()
}

// Sign adds s's signature to the newest version of role (root or
// targets), replacing an earlier one by the same key. A key that no
// threshold of that version counts is refused.
func (c *Ceremony) Sign(role string, s signature.Signer) (*Status, error) {
	files, err := readRepo(c.Dir)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(s)
	if err != nil {
		return nil, err
	}
	if len(files.roots) == 0 {
		return nil, fmt.Errorf("%s holds no root; start with 'signet tuf init'", c.Dir)
	}
	rv := files.latest(files.roots)
	newest, err := metadata.Root().FromBytes(files.roots[rv])
	if err != nil {
		return nil, fmt.Errorf("%d.root.json: %w", rv, err)
	}
	switch role {
	case metadata.ROOT:
		counts := []*metadata.Metadata[metadata.RootType]{newest}
		if rv > 1 {
			prev, err := metadata.Root().FromBytes(files.roots[rv-1])
			if err != nil {
				return nil, fmt.Errorf("%d.root.json: %w", rv-1, err)
			}
			counts = append(counts, prev)
		}
		if !slices.ContainsFunc(counts, func(r *metadata.Metadata[metadata.RootType]) bool {
			return slices.Contains(r.Signed.Roles[metadata.ROOT].KeyIDs, id)
		}) {
			return nil, fmt.Errorf("key %s is not a root key of %d.root.json%s, so its signature would not count; sign with one of the root keys 'signet tuf status' lists", id, rv, map[bool]string{true: fmt.Sprintf(" or %d.root.json", rv-1)}[rv > 1])
		}
		if err := signFile(filepath.Join(c.Dir, fmt.Sprintf("%d.root.json", rv)), metadata.Root(), s, id); err != nil {
			return nil, err
		}
	case metadata.TARGETS:
		if len(files.targets) == 0 {
			return nil, fmt.Errorf("%s holds no targets metadata; make it with 'signet tuf targets'", c.Dir)
		}
		if !slices.Contains(newest.Signed.Roles[metadata.TARGETS].KeyIDs, id) {
			return nil, fmt.Errorf("key %s is not a targets key of %d.root.json, so its signature would not count; sign with one of the targets keys 'signet tuf status' lists", id, rv)
		}
		tv := files.latest(files.targets)
		if err := signFile(filepath.Join(c.Dir, fmt.Sprintf("%d.targets.json", tv)), metadata.Targets(), s, id); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("role %q: the ceremony signs root and targets; the server's online key signs snapshot and timestamp", role)
	}
	return c.Status()
}

func signFile[T metadata.Roles](path string, md *metadata.Metadata[T], s signature.Signer, id string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if md, err = md.FromBytes(b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	md.Signatures = slices.DeleteFunc(md.Signatures, func(sig metadata.Signature) bool { return sig.KeyID == id })
	if _, err := md.Sign(s); err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	return writeMeta(path, md)
}

func writeMeta[T metadata.Roles](path string, md *metadata.Metadata[T]) error {
	b, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	return storage.WriteFileSync(path, b, 0o644)
}

// Status reports the newest root and targets and what they still lack.
func (c *Ceremony) Status() (*Status, error) {
	files, err := readRepo(c.Dir)
	if err != nil {
		return nil, err
	}
	st := &Status{Dir: c.Dir, Roles: map[string]RoleKeyIDs{}, Problems: []string{}}
	if len(files.roots) == 0 {
		return nil, fmt.Errorf("%s holds no root; start with 'signet tuf init'", c.Dir)
	}
	now := c.now()
	rv := files.latest(files.roots)
	root, err := metadata.Root().FromBytes(files.roots[rv])
	if err != nil {
		return nil, fmt.Errorf("%d.root.json: %w", rv, err)
	}
	for name, r := range root.Signed.Roles {
		st.Roles[name] = RoleKeyIDs{KeyIDs: r.KeyIDs, Threshold: r.Threshold}
	}
	st.Root = &RoleStatus{Role: metadata.ROOT, Version: rv, File: fmt.Sprintf("%d.root.json", rv), Expires: root.Signed.Expires, Expired: root.Signed.IsExpired(now)}
	st.Root.Thresholds = append(st.Root.Thresholds, count(root, metadata.ROOT, fmt.Sprintf("%d.root.json", rv), root))
	if rv > 1 {
		if prev, err := metadata.Root().FromBytes(files.roots[rv-1]); err == nil {
			st.Root.Thresholds = append(st.Root.Thresholds, count(prev, metadata.ROOT, fmt.Sprintf("%d.root.json", rv-1), root))
		}
	}
	if _, err := verifyRoots(files.roots); err != nil {
		st.Problems = append(st.Problems, err.Error())
	} else {
		st.Root.Complete = true
	}
	if st.Root.Expired {
		st.Problems = append(st.Problems, fmt.Sprintf("%s expired at %s: make a new root version", st.Root.File, st.Root.Expires.Format(time.RFC3339)))
	}
	if len(files.targets) == 0 {
		st.Problems = append(st.Problems, "no targets metadata: make it with 'signet tuf targets'")
	} else {
		tv := files.latest(files.targets)
		t, err := metadata.Targets().FromBytes(files.targets[tv])
		if err != nil {
			return nil, fmt.Errorf("%d.targets.json: %w", tv, err)
		}
		ts := &RoleStatus{Role: metadata.TARGETS, Version: tv, File: fmt.Sprintf("%d.targets.json", tv), Expires: t.Signed.Expires, Expired: t.Signed.IsExpired(now)}
		ts.Thresholds = []Threshold{count(root, metadata.TARGETS, st.Root.File, t)}
		if err := verifyTargets(root, files, tv); err != nil {
			st.Problems = append(st.Problems, err.Error())
		} else {
			ts.Complete = true
		}
		if ts.Expired {
			st.Problems = append(st.Problems, fmt.Sprintf("%s expired at %s: make and sign a new targets version", ts.File, ts.Expires.Format(time.RFC3339)))
		}
		st.Targets = ts
	}
	st.Ready = len(st.Problems) == 0
	return st, nil
}

// count says which of role's keys in by signed md. It is a report; what
// decides is go-tuf's VerifyDelegate (verifyRoots, verifyTargets).
func count[T metadata.Roles](by *metadata.Metadata[metadata.RootType], role, byName string, md *metadata.Metadata[T]) Threshold {
	r := by.Signed.Roles[role]
	th := Threshold{By: byName, Want: r.Threshold, Signed: []string{}, Missing: []string{}}
	payload, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		return th
	}
	for _, id := range r.KeyIDs {
		ok := false
		for _, sig := range md.Signatures {
			if sig.KeyID == id && validSignature(by.Signed.Keys[id], sig.Signature, payload) {
				ok = true
			}
		}
		if ok {
			th.Have++
			th.Signed = append(th.Signed, id)
		} else {
			th.Missing = append(th.Missing, id)
		}
	}
	return th
}

// validSignature mirrors the hash choice of go-tuf's VerifyDelegate.
func validSignature(k *metadata.Key, sig, payload []byte) bool {
	if k == nil {
		return false
	}
	pub, err := k.ToPublicKey()
	if err != nil {
		return false
	}
	h := crypto.SHA256
	if k.Type == metadata.KeyTypeEd25519 {
		h = crypto.Hash(0)
	}
	v, err := signature.LoadVerifier(pub, h)
	if err != nil {
		return false
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil
}

// repoFiles are a repository directory's metadata by version, and its
// target files by name under targets/.
type repoFiles struct {
	roots, targets, snapshots map[int64][]byte
	targetFiles               map[string][]byte
}

func (f *repoFiles) latest(m map[int64][]byte) int64 {
	var v int64
	for k := range m {
		v = max(v, k)
	}
	return v
}

func readRepo(dir string) (*repoFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	f := &repoFiles{roots: map[int64][]byte{}, targets: map[int64][]byte{}, snapshots: map[int64][]byte{}, targetFiles: map[string][]byte{}}
	for _, e := range entries {
		m := versioned.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		map[string]map[int64][]byte{"root": f.roots, "targets": f.targets, "snapshot": f.snapshots}[m[2]][versionOf(e.Name())] = b
	}
	tents, err := os.ReadDir(filepath.Join(dir, "targets"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range tents {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, "targets", e.Name()))
			if err != nil {
				return nil, err
			}
			f.targetFiles[e.Name()] = b
		}
	}
	return f, nil
}

// verifyRoots walks the root chain 1..N as a client does (go-tuf's
// trusted metadata: each version signed by a threshold of its own root
// keys and of the previous version's, versions one apart) and returns the
// newest root.
func verifyRoots(roots map[int64][]byte) (*metadata.Metadata[metadata.RootType], error) {
	if roots[1] == nil {
		return nil, errors.New("no 1.root.json, where every client's chain starts")
	}
	tm, err := trustedmetadata.New(roots[1])
	if err != nil {
		return nil, rootErr(1, err)
	}
	var v int64 = 2
	for ; roots[v] != nil; v++ {
		if _, err := tm.UpdateRoot(roots[v]); err != nil {
			return nil, rootErr(v, err)
		}
	}
	if len(roots) != int(v-1) {
		return nil, fmt.Errorf("%d.root.json is missing: clients walk every version from 1", v)
	}
	return tm.Root, nil
}

func rootErr(v int64, err error) error {
	if errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
		by := "its own root keys"
		if v > 1 {
			by = fmt.Sprintf("the root keys of %d.root.json and of its own (TUF 5.3.4)", v-1)
		}
		return fmt.Errorf("%d.root.json: %w: it needs a threshold of %s (%v); collect more with 'signet tuf sign --role root'", v, ErrNotSigned, by, err)
	}
	return fmt.Errorf("%d.root.json: %w", v, err)
}

// verifyTargets checks targets version tv against root, and that each
// target file it lists is present with its hash.
func verifyTargets(root *metadata.Metadata[metadata.RootType], files *repoFiles, tv int64) error {
	t, err := metadata.Targets().FromBytes(files.targets[tv])
	if err != nil {
		return fmt.Errorf("%d.targets.json: %w", tv, err)
	}
	if err := root.VerifyDelegate(metadata.TARGETS, t); err != nil {
		if errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			return fmt.Errorf("%d.targets.json: %w: it needs a threshold of the targets keys of %d.root.json (%v); collect more with 'signet tuf sign --role targets'", tv, ErrNotSigned, root.Signed.Version, err)
		}
		return fmt.Errorf("%d.targets.json: %w", tv, err)
	}
	for name, tf := range t.Signed.Targets {
		sum := tf.Hashes["sha256"]
		data, ok := files.targetFiles[hex.EncodeToString(sum)+"."+name]
		if !ok {
			return fmt.Errorf("%d.targets.json lists %s, but targets/%s.%s is missing", tv, name, hex.EncodeToString(sum), name)
		}
		if err := tf.VerifyLengthHashes(data); err != nil {
			return fmt.Errorf("targets/%s.%s: %w", hex.EncodeToString(sum), name, err)
		}
	}
	return nil
}

// Published is what Publish did.
type Published struct {
	To          string   `json:"to"`
	RootVersion int64    `json:"rootVersion"`
	TargetsVer  int64    `json:"targetsVersion"`
	Written     []string `json:"written"`
	Unchanged   []string `json:"unchanged"`
}

// Publish copies the ceremony's complete root chain, targets metadata and
// target files into to, the directory the server serves (tuf.dir). It
// refuses an incomplete or expired root or targets, and a file that would
// replace a published one with other content (a version number is never
// reused), and writes nothing then.
func (c *Ceremony) Publish(to string) (*Published, error) {
	st, err := c.Status()
	if err != nil {
		return nil, err
	}
	if !st.Ready {
		return nil, fmt.Errorf("not publishable: %s", strings.Join(st.Problems, "; "))
	}
	files, err := readRepo(c.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(to, "targets"), 0o755); err != nil {
		return nil, err
	}
	have, err := readRepo(to)
	if err != nil {
		return nil, err
	}
	for v := range have.roots {
		if files.roots[v] == nil {
			return nil, fmt.Errorf("%s already publishes %d.root.json, which %s does not hold: publish from the ceremony directory that made it", to, v, c.Dir)
		}
	}
	for v := range have.targets {
		if v > st.Targets.Version {
			return nil, fmt.Errorf("%s already publishes %d.targets.json, newer than %s's %d: make a targets version above it", to, v, c.Dir, st.Targets.Version)
		}
	}
	type file struct {
		name string
		data []byte
	}
	// Target files first, then the targets metadata naming them, then the
	// roots: a server that starts mid-way never sees metadata whose files
	// are missing.
	var out []file
	for name, b := range files.targetFiles {
		out = append(out, file{"targets/" + name, b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	out = append(out, file{st.Targets.File, files.targets[st.Targets.Version]})
	for v := int64(1); v <= st.Root.Version; v++ {
		out = append(out, file{fmt.Sprintf("%d.root.json", v), files.roots[v]})
	}
	res := &Published{To: to, RootVersion: st.Root.Version, TargetsVer: st.Targets.Version, Written: []string{}, Unchanged: []string{}}
	for _, f := range out {
		old, err := os.ReadFile(filepath.Join(to, f.name))
		switch {
		case err == nil && bytes.Equal(old, f.data):
			res.Unchanged = append(res.Unchanged, f.name)
		case err == nil:
			return nil, fmt.Errorf("%s already publishes a different %s: a published version is never replaced; make the next version instead", to, f.name)
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	for _, f := range out {
		if slices.Contains(res.Unchanged, f.name) {
			continue
		}
		if err := storage.WriteFileSync(filepath.Join(to, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
		res.Written = append(res.Written, f.name)
	}
	return res, nil
}
