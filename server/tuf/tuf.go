// Package tuf publishes the server's trust files through a TUF repository
// (theupdateframework/go-tuf v2 metadata), laid out as Sigstore's
// root-signing repository is: consistent snapshots, metadata at
// /tuf/N.root.json, /tuf/timestamp.json, /tuf/N.snapshot.json,
// /tuf/N.targets.json, and the targets trusted_root.json and
// signing_config.v0.2.json at /tuf/targets/<sha256>.<name>. sigstore-go's
// TUF client and `cosign initialize --mirror URL --root root.json` use it
// unchanged.
//
// This is the zero-config repository: one Ed25519 key, kept in the data
// directory, signs all four roles, so the root key is online. It makes
// `--root`-pinned bootstrapping work end to end; an offline root with
// threshold keys (a key ceremony) is a later step.
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
)

// Target names, as in Sigstore's root-signing repository.
const (
	TrustedRootTarget   = "trusted_root.json"
	SigningConfigTarget = "signing_config.v0.2.json"
)

// Options configure the repository.
type Options struct {
	Dir     string // where the metadata is kept across restarts
	Key     ed25519.PrivateKey
	Targets map[string][]byte
	Logger  *slog.Logger
	Now     func() time.Time
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
	root                            []byte // the newest N.root.json

	stop chan struct{}
	done chan struct{}
}

// Open loads the repository kept in o.Dir, re-signs what the targets or
// time require (new versions, never lower ones), and starts refreshing the
// timestamp.
func Open(o Options) (*Repo, error) {
	if len(o.Key) != ed25519.PrivateKeySize {
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
	s, err := signature.LoadED25519Signer(o.Key)
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	key, err := metadata.KeyFromPublicKey(o.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	id, err := key.ID()
	if err != nil {
		return nil, fmt.Errorf("tuf: %w", err)
	}
	r := &Repo{o: o, signer: s, keyID: id, key: key, files: map[string][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.load(); err != nil {
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
	r.root = r.files[rootName]

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

	// Snapshot names the targets version; a new one when that changed.
	sv := latest["snapshot"]
	keepS := false
	if sv > 0 {
		if s, err := metadata.Snapshot().FromBytes(r.files[fmt.Sprintf("%d.snapshot.json", sv)]); err == nil && s.Signed.Meta["targets.json"] != nil &&
			s.Signed.Meta["targets.json"].Version == tv && s.Signed.Expires.Sub(now) > snapshotExpiry/2 {
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
		now := r.o.Now().UTC()
		var err error
		if r.snapshotExpires.Sub(now) < snapshotExpiry/2 {
			err = r.newSnapshot(r.snapshotV+1, now)
		}
		if err == nil && r.timestampExp.Sub(now) < timestampExpiry/2 {
			err = r.newTimestamp(now)
		}
		if err != nil {
			r.o.Logger.Error("re-signing TUF metadata failed; clients will see it expire", "error", err)
		}
	}
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
