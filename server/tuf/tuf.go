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
//
// The metadata the server signs is kept in its data directory, or, for
// replicas of one server (Options.DSN), in a database they share
// (store.go): each re-sign holds the database's lock, so one replica
// signs each version and the others serve it.
package tuf

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
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
	// reloadEvery: how often a replica re-reads the shared metadata.
	reloadEvery = time.Minute
	// switchDelay: how long after signing a replica sharing the database
	// serves a new timestamp (state): three reloads, so that every replica
	// has it before it is due, even after a slow reload or with clocks
	// some seconds apart.
	switchDelay = 3 * reloadEvery
)

// Target names, as in Sigstore's root-signing repository.
const (
	TrustedRootTarget   = "trusted_root.json"
	SigningConfigTarget = "signing_config.v0.2.json"
)

// Options configure the repository.
type Options struct {
	// Dir is where the metadata is kept across restarts; with DSN it is
	// only read, once at Open: the versions it holds (those the server
	// served before it shared a database) are a floor for the versions
	// signed into the database. A published repository's Dir is the
	// ceremony's (root and targets), with or without DSN.
	Dir string
	// DSN, when set, is the go-sql-driver/mysql data source name of the
	// database that replicas of one server share: the metadata the server
	// signs (zero-config: all four roles and the target files; published:
	// snapshot and timestamp) is kept there, re-signed under its lock, and
	// re-read every reloadEvery. Timeouts it leaves unset are bounded.
	DSN string
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

	store  metaStore
	shared bool // the store is a database replicas share
	// static is what is served beside the store's files: the target
	// files, and a published repository's roots and targets.
	static map[string][]byte
	// pub is the published repository's verified root and targets.
	pub *ceremonyRepo
	// floor: versions Dir held before the server shared a database.
	floor map[string]int64

	syncMu sync.Mutex // one re-sign or reload at a time

	mu    sync.RWMutex
	files map[string][]byte // path under /tuf/ → content
	// next is a timestamp to serve from nextFrom on (state).
	next     []byte
	nextFrom time.Time
	// the versions served, and their expiries
	targetsV, snapshotV, timestampV int64
	snapshotExpires, timestampExp   time.Time
	targetsExp                      time.Time
	root                            []byte // the newest N.root.json
	rootMD                          *metadata.Metadata[metadata.RootType]

	stop chan struct{}
	done chan struct{}
}

// ceremonyRepo is what a published repository's Dir holds, verified.
type ceremonyRepo struct {
	root       *metadata.Metadata[metadata.RootType]
	targetsV   int64
	targetsExp time.Time
}

// Open loads the repository kept in o.Dir (or the database o.DSN names),
// re-signs what the targets or time require (new versions, never lower
// ones), and starts refreshing the timestamp.
func Open(o Options) (*Repo, error) {
	if o.Published && o.Online == nil {
		return nil, errors.New("tuf: a published repository needs its online key")
	}
	if !o.Published && o.Online == nil && len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("tuf: no Ed25519 key")
	}
	if o.Dir == "" && (o.DSN == "" || o.Published) {
		return nil, errors.New("tuf: no directory for the repository")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DSN == "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("tuf: %w", err)
		}
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
	r := &Repo{o: o, signer: s, keyID: id, key: key, static: map[string][]byte{}, floor: map[string]int64{}, files: map[string][]byte{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if o.Published {
		if err := r.loadPublished(); err != nil {
			return nil, err
		}
	} else {
		for name, data := range o.Targets {
			sum := sha256.Sum256(data)
			r.static["targets/"+hex.EncodeToString(sum[:])+"."+name] = data
		}
	}
	if o.DSN == "" {
		r.store = &dirStore{dir: o.Dir}
	} else {
		if err := r.readFloor(); err != nil {
			return nil, err
		}
		db, err := openSQL(o.DSN)
		if err != nil {
			return nil, fmt.Errorf("tuf: the TUF metadata the replicas share: %w", err)
		}
		r.store, r.shared = db, true
	}
	// One server re-signs the timestamp at each start (docs/server.md);
	// replicas do not: each start would move every replica's timestamp.
	if err := r.sign(o.Now().UTC(), true, !r.shared); err != nil {
		_ = r.store.close()
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
		_ = r.store.close()
	}
}

// Root is the newest root metadata, for clients to pin (`--root`).
func (r *Repo) Root() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return bytes.Clone(r.root)
}

var versioned = regexp.MustCompile(`^([0-9]+)\.(root|targets|snapshot)\.json$`)

// latest is the newest version of role in files.
func latest(files map[string][]byte, role string) int64 {
	var v int64
	for name := range files {
		if m := versioned.FindStringSubmatch(name); m != nil && m[2] == role {
			v = max(v, versionOf(name))
		}
	}
	return v
}

// readFloor notes the versions Dir holds, from before the server shared a
// database: what it signs there goes above them, so its clients never see
// a version go back.
func (r *Repo) readFloor() error {
	if r.o.Dir == "" {
		return nil
	}
	st, err := (&dirStore{dir: r.o.Dir}).read(context.Background())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tuf: %w", err)
	}
	for _, role := range []string{metadata.TARGETS, metadata.SNAPSHOT} {
		r.floor[role] = latest(st.files, role)
	}
	if ts, err := metadata.Timestamp().FromBytes(st.files["timestamp.json"]); err == nil {
		r.floor[metadata.TIMESTAMP] = ts.Signed.Version
	}
	return nil
}

// minVersion is the lowest version role may have: what this server
// served, and what Dir held before the database.
func (r *Repo) minVersion(role string) int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v := r.floor[role]
	switch role {
	case metadata.TARGETS:
		v = max(v, r.targetsV)
	case metadata.SNAPSHOT:
		v = max(v, r.snapshotV)
	case metadata.TIMESTAMP:
		v = max(v, r.timestampV)
	}
	return v
}

// sign re-signs, under the store's lock, what the stored metadata needs
// (plan), and serves the result. At start (startup) the targets are
// compared with Options.Targets; force signs a new timestamp regardless.
func (r *Repo) sign(now time.Time, startup, force bool) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	var planErr error
	st, err := r.store.update(context.Background(), func(cur *state) (*state, error) {
		st, err := r.plan(cur, now, startup, force)
		planErr = err
		return st, err
	})
	if planErr != nil {
		return planErr
	}
	if err != nil {
		return fmt.Errorf("tuf: the TUF metadata in %s: %w", r.store.where(), err)
	}
	return r.adopt(st, now)
}

// reload serves what the store holds now, as another replica signed it.
func (r *Repo) reload() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	st, err := r.store.read(context.Background())
	if err != nil {
		return fmt.Errorf("tuf: reading the TUF metadata in %s: %w", r.store.where(), err)
	}
	var behind error
	if r.o.Published && r.ceremonyBehind(st) != nil {
		// Another replica signed a snapshot over targets published to its
		// tuf.dir: they may be in this one's too by now.
		// If not, what the database holds is served all the same (going
		// back would make clients refuse this replica), and its clients
		// miss the targets until they are published here.
		if behind = r.loadPublished(); behind == nil {
			behind = r.ceremonyBehind(st)
		}
	}
	return errors.Join(r.adopt(st, r.o.Now().UTC()), behind)
}

// plan signs into st what it lacks or what time requires: a root when
// there is none (zero-config); a targets version when the trust files
// changed (at start) or it nears expiry; a snapshot when the one kept does
// not name the targets version or nears expiry; a timestamp when the one
// kept does not name the snapshot or nears expiry. A version is never
// below one the server served.
func (r *Repo) plan(st *state, now time.Time, startup, force bool) (*state, error) {
	// Root: version 1 made once; a kept root must name this key.
	root := r.rootOf(nil)
	if !r.o.Published {
		rv := latest(st.files, "root")
		if rv == 0 {
			md := metadata.Root(now.Add(rootExpiry))
			for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
				if err := md.Signed.AddKey(r.key, role); err != nil {
					return nil, fmt.Errorf("tuf: %w", err)
				}
			}
			if err := r.put(st, "1.root.json", md); err != nil {
				return nil, err
			}
			rv = 1
		}
		name := fmt.Sprintf("%d.root.json", rv)
		var err error
		if root, err = metadata.Root().FromBytes(st.files[name]); err != nil {
			return nil, fmt.Errorf("tuf: %s in %s: %w", name, r.store.where(), err)
		}
		if _, ok := root.Signed.Keys[r.keyID]; !ok {
			return nil, fmt.Errorf("tuf: %s in %s does not name the repository's key %s: the TUF key was replaced; restore it, or sign a new root that trusts it", name, r.store.where(), r.keyID)
		}
	}

	// Targets: a new version when the trust files changed or it nears
	// expiry.
	var tv int64
	if r.o.Published {
		tv = r.pub.targetsV
		if err := r.ceremonyBehind(st); err != nil {
			return nil, err
		}
	} else {
		tv = latest(st.files, "targets")
		var want map[string]*metadata.TargetFiles
		if startup || tv == 0 {
			want = map[string]*metadata.TargetFiles{}
			for name, data := range r.o.Targets {
				tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
				if err != nil {
					return nil, fmt.Errorf("tuf: target %s: %w", name, err)
				}
				want[name] = tf
			}
			if r.shared {
				// Replicas that still build the older trust files (in a
				// rolling upgrade) serve the newer ones from here.
				maps.Copy(st.files, r.static)
			}
		}
		keep := false
		if tv > 0 {
			if t, err := metadata.Targets().FromBytes(st.files[fmt.Sprintf("%d.targets.json", tv)]); err == nil {
				if want == nil { // the refresher re-signs what is kept
					want = t.Signed.Targets
				}
				keep = sameTargets(t.Signed.Targets, want) && t.Signed.Expires.Sub(now) > targetsExpiry/2 &&
					root.VerifyDelegate(metadata.TARGETS, t) == nil && tv >= r.minVersion(metadata.TARGETS)
			}
		}
		if want == nil {
			return nil, fmt.Errorf("tuf: %d.targets.json in %s does not parse, and only a start re-signs the trust files", tv, r.store.where())
		}
		if !keep {
			tv = max(tv, r.minVersion(metadata.TARGETS)) + 1
			t := metadata.Targets(now.Add(targetsExpiry))
			t.Signed.Version = tv
			t.Signed.Targets = want
			if err := r.put(st, fmt.Sprintf("%d.targets.json", tv), t); err != nil {
				return nil, err
			}
		}
	}

	// Snapshot. One signed before a root rotation may not verify under the
	// newest root's snapshot keys: then it is signed again.
	sv := latest(st.files, "snapshot")
	keep := false
	if sv > 0 {
		if s, err := metadata.Snapshot().FromBytes(st.files[fmt.Sprintf("%d.snapshot.json", sv)]); err == nil && s.Signed.Meta["targets.json"] != nil &&
			s.Signed.Meta["targets.json"].Version == tv && s.Signed.Expires.Sub(now) > snapshotExpiry/2 && root.VerifyDelegate(metadata.SNAPSHOT, s) == nil &&
			sv >= r.minVersion(metadata.SNAPSHOT) {
			keep = true
		}
	}
	if !keep {
		sv = max(sv, r.minVersion(metadata.SNAPSHOT)) + 1
		s := metadata.Snapshot(now.Add(snapshotExpiry))
		s.Signed.Version = sv
		s.Signed.Meta["targets.json"] = metadata.MetaFile(tv)
		if err := r.put(st, fmt.Sprintf("%d.snapshot.json", sv), s); err != nil {
			return nil, err
		}
	}

	// Timestamp. One signed ahead and now due becomes the current one.
	if st.next != nil && !now.Before(st.nextFrom) {
		st.files["timestamp.json"], st.next = st.next, nil
	}
	newest := st.files["timestamp.json"]
	if st.next != nil {
		newest = st.next
	}
	var tsv int64
	keep = false
	if ts, err := metadata.Timestamp().FromBytes(newest); err == nil {
		tsv = ts.Signed.Version
		keep = !force && ts.Signed.Meta["snapshot.json"] != nil && ts.Signed.Meta["snapshot.json"].Version == sv &&
			ts.Signed.Expires.Sub(now) > timestampExpiry/2 && root.VerifyDelegate(metadata.TIMESTAMP, ts) == nil &&
			tsv >= r.minVersion(metadata.TIMESTAMP)
	}
	if !keep {
		ts := metadata.Timestamp(now.Add(timestampExpiry))
		ts.Signed.Version = max(tsv, r.minVersion(metadata.TIMESTAMP)) + 1
		ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(sv)
		b, err := r.signed(fmt.Sprintf("timestamp version %d", ts.Signed.Version), ts)
		if err != nil {
			return nil, err
		}
		if !r.shared || st.files["timestamp.json"] == nil {
			// One server, or none served yet: nothing to go back from.
			st.files["timestamp.json"], st.next = b, nil
		} else {
			st.next, st.nextFrom = b, now.Add(switchDelay)
		}
	}
	return st, nil
}

// ceremonyBehind says whether the newest stored snapshot names a targets
// version newer than Dir's: the operator published the ceremony's new
// targets to another replica's tuf.dir only. Signing a snapshot here would
// take clients back to the older targets.
func (r *Repo) ceremonyBehind(st *state) error {
	sv := latest(st.files, "snapshot")
	s, err := metadata.Snapshot().FromBytes(st.files[fmt.Sprintf("%d.snapshot.json", sv)])
	if err != nil || s.Signed.Meta["targets.json"] == nil || s.Signed.Meta["targets.json"].Version <= r.pub.targetsV {
		return nil
	}
	return fmt.Errorf("tuf: %d.snapshot.json in %s names %d.targets.json, but %s holds targets up to version %d: another replica was given a newer publication of the key ceremony; publish it to this server's tuf.dir too ('signet tuf publish --to %s')",
		sv, r.store.where(), s.Signed.Meta["targets.json"].Version, r.o.Dir, r.pub.targetsV, r.o.Dir)
}

// rootOf is the root the metadata is checked against: the ceremony's, or
// the newest in files.
func (r *Repo) rootOf(files map[string][]byte) *metadata.Metadata[metadata.RootType] {
	if r.o.Published {
		return r.pub.root
	}
	root, _ := metadata.Root().FromBytes(files[fmt.Sprintf("%d.root.json", latest(files, "root"))])
	return root
}

// adopt serves st: its timestamp, or the one signed ahead once due. It
// refuses a state older than what the server served (a database restored
// from a backup, or another database): clients would refuse it.
func (r *Repo) adopt(st *state, now time.Time) error {
	cur, next := st.files["timestamp.json"], st.next
	if next != nil && !now.Before(st.nextFrom) {
		cur, next = next, nil
	}
	files := maps.Clone(r.static)
	for n, b := range st.files {
		if !r.o.Published || strings.HasSuffix(n, ".snapshot.json") || n == "timestamp.json" {
			files[n] = b
		}
	}
	files["timestamp.json"] = cur
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.serve(files, cur)
	if err != nil {
		// What is served stays; the versioned files signed meanwhile are
		// added, for a timestamp ahead that names them.
		for n, b := range files {
			if _, ok := r.files[n]; !ok && n != "timestamp.json" {
				r.files[n] = b
			}
		}
		err = fmt.Errorf("tuf: the TUF metadata in %s: %w", r.store.where(), err)
	}
	r.next = nil
	if ts, perr := metadata.Timestamp().FromBytes(next); next != nil && perr == nil && ts.Signed.Version > r.timestampV {
		r.next, r.nextFrom = next, st.nextFrom
	}
	return err
}

// serve makes files, whose timestamp.json is ts, what is served, unless
// they are older than what is (r.mu held).
func (r *Repo) serve(files map[string][]byte, ts []byte) error {
	t, err := metadata.Timestamp().FromBytes(ts)
	if err != nil {
		return fmt.Errorf("timestamp.json: %w", err)
	}
	if t.Signed.Version < r.timestampV {
		return fmt.Errorf("timestamp.json is version %d, older than version %d this server serves: keeping that (was the database restored from a backup, or is it another one?)", t.Signed.Version, r.timestampV)
	}
	if t.Signed.Meta["snapshot.json"] == nil {
		return errors.New("timestamp.json names no snapshot")
	}
	sv := t.Signed.Meta["snapshot.json"].Version
	s, err := metadata.Snapshot().FromBytes(files[fmt.Sprintf("%d.snapshot.json", sv)])
	if err != nil {
		return fmt.Errorf("%d.snapshot.json, which timestamp.json names: %w", sv, err)
	}
	if s.Signed.Meta["targets.json"] == nil {
		return fmt.Errorf("%d.snapshot.json names no targets", sv)
	}
	tv := s.Signed.Meta["targets.json"].Version
	rootMD := r.rootOf(files)
	if rootMD == nil {
		return errors.New("no root")
	}
	tname := fmt.Sprintf("%d.targets.json", tv)
	if r.o.Published {
		tname = fmt.Sprintf("%d.targets.json", r.pub.targetsV)
	}
	t2, err := metadata.Targets().FromBytes(files[tname])
	if err != nil {
		return fmt.Errorf("%s, which %d.snapshot.json names: %w", tname, sv, err)
	}
	r.files = files
	r.root = files[fmt.Sprintf("%d.root.json", rootMD.Signed.Version)]
	r.rootMD = rootMD
	r.targetsV, r.targetsExp = tv, t2.Signed.Expires
	r.snapshotV, r.snapshotExpires = sv, s.Signed.Expires
	r.timestampV, r.timestampExp = t.Signed.Version, t.Signed.Expires
	return nil
}

// due switches to the timestamp signed ahead once its time has come.
func (r *Repo) due() {
	r.mu.RLock()
	waiting := r.next != nil && !r.o.Now().Before(r.nextFrom)
	r.mu.RUnlock()
	if !waiting {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil || r.o.Now().Before(r.nextFrom) {
		return
	}
	files := maps.Clone(r.files)
	files["timestamp.json"] = r.next
	if err := r.serve(files, r.next); err != nil {
		r.o.Logger.Error("the TUF timestamp signed ahead cannot be served; keeping the current one", "error", err)
	}
	r.next = nil
}

// loadPublished verifies a repository published by a key ceremony (the
// root chain from 1.root.json, each version under thresholds of the old
// and the new root keys; the targets under the newest root) for the
// online key to sign its snapshot and timestamp. Anything that does not
// verify refuses start: clients would refuse it too, later and with less
// to go on.
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
	// Replaced whole: a reload re-reads Dir while requests are served.
	static := maps.Clone(r.static)
	for v, b := range files.roots {
		static[fmt.Sprintf("%d.root.json", v)] = b
	}
	for v, b := range files.targets {
		static[fmt.Sprintf("%d.targets.json", v)] = b
	}
	for name, b := range files.targetFiles {
		static["targets/"+name] = b
	}
	t, _ := metadata.Targets().FromBytes(files.targets[tv])
	r.mu.Lock()
	r.static, r.pub = static, &ceremonyRepo{root: root, targetsV: tv, targetsExp: t.Signed.Expires}
	r.mu.Unlock()
	r.warnOffline(now)
	// The trust files the server builds are compared, not signed: a
	// difference means the ceremony's targets are stale (or deliberately
	// different, e.g. keeping a retired key trusted).
	for name, data := range r.o.Targets {
		if tf, err := TargetFile(name, data); err == nil && (t.Signed.Targets[name] == nil || !t.Signed.Targets[name].Equal(*tf)) {
			r.o.Logger.Warn("the published TUF targets differ from the trust file the server builds; sign a new targets version with it if it changed ('signet tuf targets')", "target", name, "targets", fmt.Sprintf("%d.targets.json", tv))
		}
	}
	return nil
}

// warnOffline logs what the ceremony must re-sign soon: the server cannot.
func (r *Repo) warnOffline(now time.Time) {
	if !r.o.Published {
		return
	}
	r.mu.RLock()
	pub := r.pub
	r.mu.RUnlock()
	for _, m := range []struct {
		what    string
		expires time.Time
	}{{fmt.Sprintf("%d.root.json", pub.root.Signed.Version), pub.root.Signed.Expires}, {fmt.Sprintf("%d.targets.json", pub.targetsV), pub.targetsExp}} {
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

// signed is md signed by the online key, serialised.
func signed[T metadata.Roles](r *Repo, name string, md *metadata.Metadata[T]) ([]byte, error) {
	md.ClearSignatures()
	if _, err := md.Sign(r.signer); err != nil {
		return nil, fmt.Errorf("tuf: signing %s: %w", name, err)
	}
	b, err := md.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("tuf: %s: %w", name, err)
	}
	return b, nil
}

func (r *Repo) signed(name string, md any) ([]byte, error) {
	switch m := md.(type) {
	case *metadata.Metadata[metadata.RootType]:
		return signed(r, name, m)
	case *metadata.Metadata[metadata.TargetsType]:
		return signed(r, name, m)
	case *metadata.Metadata[metadata.SnapshotType]:
		return signed(r, name, m)
	case *metadata.Metadata[metadata.TimestampType]:
		return signed(r, name, m)
	}
	return nil, fmt.Errorf("tuf: %T is not TUF metadata", md)
}

// put signs md into st as name.
func (r *Repo) put(st *state, name string, md any) error {
	b, err := r.signed(name, md)
	if err != nil {
		return err
	}
	st.files[name] = b
	return nil
}

// refresh re-signs the snapshot and timestamp before they expire and,
// for replicas sharing a database, serves what the others signed.
func (r *Repo) refresh() {
	defer close(r.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	var (
		reload  <-chan time.Time
		failing bool
	)
	if r.shared {
		rt := time.NewTicker(reloadEvery)
		defer rt.Stop()
		reload = rt.C
	}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.refreshDue()
		case <-reload:
			err := r.reload()
			if err != nil {
				r.o.Logger.Error("reading the shared TUF metadata failed; serving what this server has", "error", err, "timestamp_expires", r.expires())
			} else if failing {
				r.o.Logger.Info("reading the shared TUF metadata works again")
			}
			failing = err != nil
		}
	}
}

// refreshDue re-signs what time requires: the snapshot and the timestamp
// past half their validity (a new snapshot, a new timestamp), the
// zero-config targets too.
func (r *Repo) refreshDue() {
	now := r.o.Now().UTC()
	if err := r.sign(now, false, false); err != nil {
		r.o.Logger.Error("re-signing TUF metadata failed; serving what this server has, and clients will see it expire unless a later attempt succeeds", "error", err, "timestamp_expires", r.expires())
	}
	r.warnOffline(now)
}

// newTimestamp signs a new timestamp now, whatever the one kept.
func (r *Repo) newTimestamp(now time.Time) error { return r.sign(now.UTC(), false, true) }

func (r *Repo) expires() time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.timestampExp
}

// Register serves the repository under /tuf/.
func (r *Repo) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /tuf/{path...}", func(w http.ResponseWriter, req *http.Request) {
		r.due()
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
