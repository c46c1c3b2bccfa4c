// Package tuf publishes the server's trust files through a TUF repository
// (theupdateframework/go-tuf v2 metadata), laid out as Sigstore's
// root-signing repository is: consistent snapshots, metadata at
// /tuf/N.root.json, /tuf/timestamp.json, /tuf/N.snapshot.json,
// /tuf/N.targets.json, and the targets trusted_root.json and
// signing_config.v0.2.json at /tuf/targets/<sha256>.<name>. sigstore-go's
// TUF client and `cosign initialize --mirror URL --root root.json` use it
// unchanged.
//
// Two modes. The zero-config repository: one Ed25519 key, kept in the data
// directory, signs all four roles, so the root key is online. The
// published repository (Options.Published): root and targets come from a
// key ceremony (ceremony.go, `signet tuf`), signed offline by threshold
// keys; the server verifies them at start, refuses what does not verify,
// and holds only the online key, which signs snapshot and timestamp.
package tuf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/signet-dev/signet/server/storage"
)

// Expiries of the roles' metadata. The timestamp is re-signed well before
// it expires (refreshEvery), so clients always find a valid one.
const (
	rootExpiry      = 365 * 24 * time.Hour
	targetsExpiry   = 90 * 24 * time.Hour
	snapshotExpiry  = 7 * 24 * time.Hour
	timestampExpiry = 24 * time.Hour
	refreshEvery    = time.Hour
	// offlineWarning: how long before the offline-signed root or targets
	// expire the server starts warning, once per refresh.
	offlineWarning = 30 * 24 * time.Hour
)

// Target names, as in Sigstore's root-signing repository.
const (
	TrustedRootTarget   = "trusted_root.json"
	SigningConfigTarget = "signing_config.v0.2.json"
)

// Options configure the repository.
type Options struct {
	Dir string // where the metadata is kept across restarts
	// Key is the zero-config repository's one key, unless Online is set
	// for it (a key in a token: tuf.key).
	Key ed25519.PrivateKey
	// Targets are what the zero-config repository signs; a published
	// repository's targets come from the ceremony, and these are only
	// compared with them (a difference is logged).
	Targets map[string][]byte
	// Published: Dir holds a repository made by `signet tuf publish`, and
	// Online signs its snapshot and timestamp (the roles' keys must name
	// it).
	Published bool
	Online    signature.Signer
	Logger    *slog.Logger
	Now       func() time.Time
}

// Repo is the published repository.
type Repo struct {
	o      Options
	signer signature.Signer
	keyID  string
	key    *metadata.Key

	mu    sync.RWMutex
	files map[string][]byte // path under /tuf/ → content
	// the current versions, for the refresher
	targetsV, snapshotV, timestampV int64
	snapshotExpires, timestampExp   time.Time
	targetsExp                      time.Time
	root                            []byte // the newest N.root.json
	rootMD                          *metadata.Metadata[metadata.RootType]

	stop chan struct{}
	done chan struct{}
}

// Open loads the repository kept in o.Dir, re-signs what the targets or
// time require (new versions, never lower ones), and starts refreshing the
// timestamp.
func Open(o Options) (*Repo, error) {
	if o.Published && o.Online == nil {
		return nil, errors.New("tuf: a published repository needs its online key")
	}
	if !o.Published && o.Online == nil && len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("tuf: no Ed25519 key")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	s := o.Online
	if !o.Published && s == nil {
		var err error
		if s, err = signature.LoadED25519Signer(o.Key); err != nil {
			return nil, fmt.Errorf("tuf: %w", err)
		}
	}
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	key, err := tufKey("the online key", pub)
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	id, err := key.ID()
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	r := &Repo{o: o, signer: s, keyID: id, key: key, files: map[string][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	load := r.load
	if o.Published {
		load = r.loadPublished
	}
	if err := load(); err != nil {
		return nil, err
	}
	go r.refresh()
	return r, nil
}

// Close stops the refresher.
func (r *Repo) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
		<-r.done
	}
}

// Root is the newest root metadata, for clients to pin (`--root`).
func (r *Repo) Root() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return bytes.Clone(r.root)
}

func (r *Repo) path(name string) string { return filepath.Join(r.o.Dir, name) }

var versioned = regexp.MustCompile(`^([0-9]+)\.(root|targets|snapshot)\.json$`)

// load reads what is kept and signs what must change.
func (r *Repo) load() error {
	now := r.o.Now().UTC()
	entries, err := os.ReadDir(r.o.Dir)
	if err != nil {
		return fmt.Errorf("tuf: %w", err)
	}
	latest := map[string]int64{}
	for _, e := range entries {
		if m := versioned.FindStringSubmatch(e.Name()); m != nil {
			v := versionOf(e.Name())
			b, err := os.ReadFile(r.path(e.Name()))
			if err != nil {
				return fmt.Errorf("tuf: %w", err)
			}
			r.files[e.Name()] = b
			latest[m[2]] = max(latest[m[2]], v)
		}
	}

	// Root: version 1 made once; a kept root must name this key.
	if latest["root"] == 0 {
		root := metadata.Root(now.Add(rootExpiry))
		for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
			if err := root.Signed.AddKey(r.key, role); err != nil {
				return fmt.Errorf("tuf: %w", err)
			}
		}
		if err := r.write("1.root.json", root); err != nil {
			return err
		}
		latest["root"] = 1
	}
	rootName := fmt.Sprintf("%d.root.json", latest["root"])
	root, err := metadata.Root().FromBytes(r.files[rootName])
	if err != nil {
		return fmt.Errorf("tuf: %s: %w", rootName, err)
	}
	if _, ok := root.Signed.Keys[r.keyID]; !ok {
		return fmt.Errorf("tuf: %s does not name the repository's key %s: the TUF key was replaced; restore it, or sign a new root that trusts it", r.path(rootName), r.keyID)
	}
	r.root, r.rootMD = r.files[rootName], root

	// Targets: a new version when the trust files changed or it nears expiry.
	want := map[string]*metadata.TargetFiles{}
	for name, data := range r.o.Targets {
		tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
		if err != nil {
			return fmt.Errorf("tuf: target %s: %w", name, err)
		}
		want[name] = tf
		sum := sha256.Sum256(data)
		r.files["targets/"+hex.EncodeToString(sum[:])+"."+name] = data
	}
	tv := latest["targets"]
	keep := false
	if tv > 0 {
		if t, err := metadata.Targets().FromBytes(r.files[fmt.Sprintf("%d.targets.json", tv)]); err == nil && sameTargets(t.Signed.Targets, want) && t.Signed.Expires.Sub(now) > targetsExpiry/2 {
			keep = true
		}
	}
	if !keep {
		tv++
		t := metadata.Targets(now.Add(targetsExpiry))
		t.Signed.Version = tv
		t.Signed.Targets = want
		if err := r.write(fmt.Sprintf("%d.targets.json", tv), t); err != nil {
			return err
		}
	}
	r.targetsV = tv
	return r.signOnline(latest["snapshot"], now)
}

// signOnline signs what the online roles need: a snapshot when the one
// kept (version sv) does not name the targets version or nears expiry,
// and always a new timestamp.
func (r *Repo) signOnline(sv int64, now time.Time) error {
	tv := r.targetsV
	keepS := false
	if sv > 0 {
		// A snapshot signed before a root rotation may not verify under the
		// newest root's snapshot keys: then it is signed again.
		if s, err := metadata.Snapshot().FromBytes(r.files[fmt.Sprintf("%d.snapshot.json", sv)]); err == nil && s.Signed.Meta["targets.json"] != nil &&
			s.Signed.Meta["targets.json"].Version == tv && s.Signed.Expires.Sub(now) > snapshotExpiry/2 && r.rootMD.VerifyDelegate(metadata.SNAPSHOT, s) == nil {
			keepS, r.snapshotExpires = true, s.Signed.Expires
		}
	}
	if !keepS {
		if err := r.newSnapshot(sv+1, now); err != nil {
			return err
		}
	} else {
		r.snapshotV = sv
	}

	// Timestamp: always re-signed at start, one version up.
	var tsv int64
	if b, err := os.ReadFile(r.path("timestamp.json")); err == nil {
		if ts, err := metadata.Timestamp().FromBytes(b); err == nil {
			tsv = ts.Signed.Version
		}
	}
	r.timestampV = tsv
	return r.newTimestamp(now)
}

// loadPublished verifies a repository published by a key ceremony (the
// root chain from 1.root.json, each version under thresholds of the old
// and the new root keys; the targets under the newest root) and signs
// what the online key signs. Anything that does not verify refuses start:
// clients would refuse it too, later and with less to go on.
func (r *Repo) loadPublished() error {
	now := r.o.Now().UTC()
	files, err := readRepo(r.o.Dir)
	if err != nil {
		return fmt.Errorf("tuf: the published repository: %w", err)
	}
	if len(files.roots) == 0 {
		return fmt.Errorf("tuf: %s holds no published root: run 'signet tuf publish --to %s' from the ceremony directory", r.o.Dir, r.o.Dir)
	}
	root, err := verifyRoots(files.roots)
	if err != nil {
		return fmt.Errorf("tuf: the published repository in %s does not verify: %w", r.o.Dir, err)
	}
	rv := root.Signed.Version
	for _, role := range []string{metadata.TIMESTAMP, metadata.SNAPSHOT} {
		rk := root.Signed.Roles[role]
		if !slices.Contains(rk.KeyIDs, r.keyID) || rk.Threshold != 1 {
			return fmt.Errorf("tuf: %d.root.json gives the %s role keys %v (threshold %d), but the server's online key (tuf.onlineKey) is %s: the online key signs snapshot and timestamp alone; configure the key the root names, or make a root version naming this one", rv, role, rk.KeyIDs, rk.Threshold, r.keyID)
		}
	}
	if len(files.targets) == 0 {
		return fmt.Errorf("tuf: %s holds no targets metadata: run 'signet tuf targets', sign it and publish", r.o.Dir)
	}
	tv := files.latest(files.targets)
	if err := verifyTargets(root, files, tv); err != nil {
		return fmt.Errorf("tuf: the published repository in %s does not verify: %w", r.o.Dir, err)
	}
	for v, b := range files.roots {
		r.files[fmt.Sprintf("%d.root.json", v)] = b
	}
	for v, b := range files.targets {
		r.files[fmt.Sprintf("%d.targets.json", v)] = b
	}
	for v, b := range files.snapshots {
		r.files[fmt.Sprintf("%d.snapshot.json", v)] = b
	}
	for name, b := range files.targetFiles {
		r.files["targets/"+name] = b
	}
	r.root, r.rootMD, r.targetsV = files.roots[rv], root, tv
	t, _ := metadata.Targets().FromBytes(files.targets[tv])
	r.targetsExp = t.Signed.Expires
	r.warnOffline(now)
	// The trust files the server builds are compared, not signed: a
	// difference means the ceremony's targets are stale (or deliberately
	// different, e.g. keeping a retired key trusted).
	for name, data := range r.o.Targets {
		if tf, err := TargetFile(name, data); err == nil && (t.Signed.Targets[name] == nil || !t.Signed.Targets[name].Equal(*tf)) {
			r.o.Logger.Warn("the published TUF targets differ from the trust file the server builds; sign a new targets version with it if it changed ('signet tuf targets')", "target", name, "targets", fmt.Sprintf("%d.targets.json", tv))
		}
	}
	return r.signOnline(files.latest(files.snapshots), now)
}

// warnOffline logs what the ceremony must re-sign soon: the server cannot.
func (r *Repo) warnOffline(now time.Time) {
	if !r.o.Published {
		return
	}
	for _, m := range []struct {
		what    string
		expires time.Time
	}{{fmt.Sprintf("%d.root.json", r.rootMD.Signed.Version), r.rootMD.Signed.Expires}, {fmt.Sprintf("%d.targets.json", r.targetsV), r.targetsExp}} {
		switch left := m.expires.Sub(now); {
		case left <= 0:
			r.o.Logger.Error("published TUF metadata expired: clients refuse the repository until the key holders sign a new version and it is published", "file", m.what, "expired", m.expires)
		case left < offlineWarning:
			r.o.Logger.Warn("published TUF metadata expires soon: the key holders must sign a new version ('signet tuf root new-version' or 'signet tuf targets') and publish it", "file", m.what, "expires", m.expires)
		}
	}
}

func sameTargets(a, b map[string]*metadata.TargetFiles) bool {
	if len(a) != len(b) {
		return false
	}
	for name, t := range b {
		if o, ok := a[name]; !ok || !o.Equal(*t) {
			return false
		}
	}
	return true
}

func (r *Repo) newSnapshot(v int64, now time.Time) error {
	s := metadata.Snapshot(now.Add(snapshotExpiry))
	s.Signed.Version = v
	s.Signed.Meta["targets.json"] = metadata.MetaFile(r.targetsV)
	if err := r.write(fmt.Sprintf("%d.snapshot.json", v), s); err != nil {
		return err
	}
	r.snapshotV, r.snapshotExpires = v, s.Signed.Expires
	return nil
}

func (r *Repo) newTimestamp(now time.Time) error {
	ts := metadata.Timestamp(now.Add(timestampExpiry))
	ts.Signed.Version = r.timestampV + 1
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshotV)
	if err := r.write("timestamp.json", ts); err != nil {
		return err
	}
	r.timestampV, r.timestampExp = ts.Signed.Version, ts.Signed.Expires
	return nil
}

// write signs md and keeps it durably, then serves it.
func write[T metadata.Roles](r *Repo, name string, md *metadata.Metadata[T]) error {
	md.ClearSignatures()
	if _, err := md.Sign(r.signer); err != nil {
		return fmt.Errorf("tuf: signing %s: %w", name, err)
	}
	b, err := md.ToBytes(true)
	if err != nil {
		return fmt.Errorf("tuf: %s: %w", name, err)
	}
	if err := storage.WriteFileSync(r.path(name), b, 0o644); err != nil {
		return fmt.Errorf("tuf: %w", err)
	}
	r.mu.Lock()
	r.files[name] = b
	r.mu.Unlock()
	return nil
}

func (r *Repo) write(name string, md any) error {
	switch m := md.(type) {
	case *metadata.Metadata[metadata.RootType]:
		return write(r, name, m)
	case *metadata.Metadata[metadata.TargetsType]:
		return write(r, name, m)
	case *metadata.Metadata[metadata.SnapshotType]:
		return write(r, name, m)
	case *metadata.Metadata[metadata.TimestampType]:
		return write(r, name, m)
	}
	return fmt.Errorf("tuf: %T is not TUF metadata", md)
}

// refresh re-signs the snapshot and timestamp before they expire.
func (r *Repo) refresh() {
	defer close(r.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.refreshDue()
	}
}

// refreshDue re-signs the snapshot and timestamp past half their validity
// (a new timestamp names a new snapshot).
func (r *Repo) refreshDue() {
	now := r.o.Now().UTC()
	var err error
	if r.snapshotExpires.Sub(now) < snapshotExpiry/2 {
		err = r.newSnapshot(r.snapshotV+1, now)
		if err == nil {
			err = r.newTimestamp(now)
		}
	}
	if err == nil && r.timestampExp.Sub(now) < timestampExpiry/2 {
		err = r.newTimestamp(now)
	}
	if err != nil {
		r.o.Logger.Error("re-signing TUF metadata failed; clients will see it expire", "error", err)
	}
	r.warnOffline(now)
}

// Register serves the repository under /tuf/.
func (r *Repo) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /tuf/{path...}", func(w http.ResponseWriter, req *http.Request) {
		p := req.PathValue("path")
		if p == "root.json" { // the newest root, for pinning
			p = r.latestRootName()
		}
		r.mu.RLock()
		b, ok := r.files[p]
		r.mu.RUnlock()
		if !ok {
			http.Error(w, "no such TUF file: "+p, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if p == "timestamp.json" {
			w.Header().Set("Cache-Control", "no-cache")
		}
		_, _ = w.Write(b)
	})
}

func (r *Repo) latestRootName() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var names []string
	for n := range r.files {
		if strings.HasSuffix(n, ".root.json") {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return versionOf(names[i]) < versionOf(names[j]) })
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1]
}

// versionOf is N of N.<role>.json.
func versionOf(name string) int64 {
	n, _, _ := strings.Cut(name, ".")
	v, _ := strconv.ParseInt(n, 10, 64)
	return v
}
