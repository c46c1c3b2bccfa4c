package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/spf13/cobra"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// logFlags are the flags every `signet log` subcommand shares.
type logFlags struct {
	trust  trustSource
	out    outputFormat
	logURL string
}

func (l *logFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	l.trust.addTrustedRoot(f)
	l.trust.addServer(f)
	f.StringVar(&l.logURL, "log", "", "log base URL as the trusted root lists it (default: the --server's log, or the root's only log)")
	l.out.add(f)
}

// openLog is a log of the trusted root, reachable through C2SP tlog-tiles,
// with its latest checkpoint verified against the root's log key.
type openLog struct {
	log        *trust.Log
	fetcher    *client.HTTPFetcher
	checkpoint *flog.Checkpoint
	note       []byte
}

// open picks the log, fetches its checkpoint and verifies it.
func (l *logFlags) open(cmd *cobra.Command) (*openLog, error) {
	if err := l.out.check(); err != nil {
		return nil, err
	}
	hc := httpClient()
	root, err := l.trust.root(cmd.Context(), hc, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	want, from := strings.TrimRight(l.logURL, "/"), "--log"
	if want == "" {
		if want, err = l.trust.serverURL(); err != nil {
			return nil, err
		}
		from = "--server"
	}
	var known []string
	var lg *trust.Log
	for _, x := range root.Root.Logs {
		known = append(known, x.BaseURL)
		if want == "" || strings.TrimRight(x.BaseURL, "/") == want {
			lg = x
		}
	}
	sort.Strings(known)
	switch {
	case want == "" && len(root.Root.Logs) != 1:
		return nil, usageError{fmt.Errorf("the trusted root lists %d logs (%s); pick one with --log URL", len(known), strings.Join(known, ", "))}
	case lg == nil:
		return nil, usageError{fmt.Errorf("%s %s is not a log in the trusted root %s (it lists %s); pass --log with one of those", from, want, root.Source, strings.Join(known, ", "))}
	}
	base, err := url.Parse(strings.TrimRight(lg.BaseURL, "/") + "/api/v2/")
	if err != nil {
		return nil, fmt.Errorf("log URL %q: %v", lg.BaseURL, err)
	}
	f, err := client.NewHTTPFetcher(base, hc)
	if err != nil {
		return nil, err
	}
	raw, err := f.ReadCheckpoint(cmd.Context())
	if err != nil {
		return nil, fmt.Errorf("log %s: reading the checkpoint: %w", lg.BaseURL, err)
	}
	cp, err := verify.OpenCheckpoint(lg, raw)
	if err != nil {
		return nil, fmt.Errorf("log %s serves a checkpoint that does not verify against the trusted root: %w", lg.BaseURL, err)
	}
	return &openLog{log: lg, fetcher: f, checkpoint: cp, note: raw}, nil
}

// checkpointJSON is a verified checkpoint in --output json.
type checkpointJSON struct {
	LogURL   string `json:"logUrl"`
	Origin   string `json:"origin"`
	TreeSize uint64 `json:"treeSize"`
	RootHash string `json:"rootHash"` // base64, as in the checkpoint
	// Note is the signed note as served, e.g. to save for a later consistency proof.
	Note     string `json:"note"`
	Verified bool   `json:"verified"`
}

func (o *openLog) checkpointJSON() checkpointJSON {
	return checkpointJSON{LogURL: o.log.BaseURL, Origin: o.checkpoint.Origin, TreeSize: o.checkpoint.Size,
		RootHash: base64.StdEncoding.EncodeToString(o.checkpoint.Hash), Note: string(o.note), Verified: true}
}

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log checkpoint|entry|proof|search",
		Short: "Inspect a transparency log: checkpoint, entries, proofs, attestation search",
		Long: `Read a Rekor v2 transparency log through its C2SP tlog-tiles API and verify
what it serves against the trusted root: the checkpoint's signature by the log
key, each entry's inclusion in that checkpoint, and consistency between two
checkpoints. 'search' asks a signet server's attestation store.
` + trustHelpVerify,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("name a subcommand: checkpoint, entry, proof or search\nRun '%s --help' for usage", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newLogCheckpointCmd(), newLogEntryCmd(), newLogProofCmd(), newLogSearchCmd())
	return cmd
}

func newLogCheckpointCmd() *cobra.Command {
	var (
		l    logFlags
		save string
	)
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Show the log's latest checkpoint, verified against the trusted root",
		Long: `Fetch the log's latest checkpoint (C2SP signed note) and verify its signature
with the log key in the trusted root. --save writes the signed note to a file;
'signet log proof --from-checkpoint FILE' later proves the log only grew
since (no entry was changed or removed).

Exit status: 0 verified; 1 fetch failed or the signature does not verify;
2 usage error.
` + trustHelpVerify,
		Example: `  signet log checkpoint --server http://127.0.0.1:8080 --save cp-monday.txt
  signet log checkpoint --trusted-root trusted_root.json --log https://log.example.com -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := l.open(cmd)
			if err != nil {
				return err
			}
			if save != "" {
				if err := os.WriteFile(save, o.note, 0o644); err != nil {
					return usageError{fmt.Errorf("--save: %v", err)}
				}
			}
			c := o.checkpointJSON()
			if l.out.json() {
				return writeJSON(cmd.OutOrStdout(), c)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "checkpoint of %s, signature verified (key ID %08x)\n", c.LogURL, o.log.CheckpointKeyID)
			fmt.Fprintf(w, "  origin     %s\n  tree size  %d\n  root hash  %s\n", c.Origin, c.TreeSize, c.RootHash)
			if save != "" {
				fmt.Fprintf(w, "  saved to   %s\n", save)
			}
			return nil
		},
	}
	l.add(cmd)
	cmd.Flags().StringVar(&save, "save", "", "write the signed checkpoint to this file")
	return cmd
}

// entryJSON is one log entry read from the tiles, in --output json.
type entryJSON struct {
	LogURL     string `json:"logUrl"`
	LogIndex   uint64 `json:"logIndex"`
	TreeSize   uint64 `json:"treeSize"`
	LeafHash   string `json:"leafHash"` // hex, RFC 6962
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Digest     string `json:"digest,omitempty"`
	KeyDetails string `json:"keyDetails,omitempty"`
	// Identity and Issuer come from a logged certificate; PublicKeySHA256
	// identifies a logged public key.
	Identity        string          `json:"identity,omitempty"`
	Issuer          string          `json:"issuer,omitempty"`
	PublicKeySHA256 string          `json:"publicKeySha256,omitempty"`
	Body            json.RawMessage `json:"body"`
	// InclusionVerified: the entry is in the verified checkpoint.
	InclusionVerified bool     `json:"inclusionVerified"`
	InclusionProof    []string `json:"inclusionProof"` // hex
}

func parseIndex(what, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageError{fmt.Errorf("%s %q is not a log index (a whole number from 0)", what, s)}
	}
	return n, nil
}

// inclusion proves that leaf is at index in the verified checkpoint.
func (o *openLog) inclusion(ctx context.Context, index uint64, leaf []byte) ([][]byte, error) {
	pb, err := client.NewProofBuilder(ctx, o.checkpoint.Size, o.fetcher.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("log %s: reading tiles: %w", o.log.BaseURL, err)
	}
	hashes, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("log %s: building the inclusion proof of entry %d: %w", o.log.BaseURL, index, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, o.checkpoint.Size, leaf, hashes, o.checkpoint.Hash); err != nil {
		return hashes, fmt.Errorf("log %s: entry %d is not included in the verified checkpoint (tree size %d): %w", o.log.BaseURL, index, o.checkpoint.Size, err)
	}
	return hashes, nil
}

func hexAll(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// describeEntry fills in what a Rekor v2 entry body says.
func describeEntry(e *entryJSON, body []byte) error {
	var ent rekorv2.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &ent); err != nil {
		return fmt.Errorf("entry %d is not a Rekor v2 entry: %v", e.LogIndex, err)
	}
	e.Kind, e.APIVersion = ent.GetKind(), ent.GetApiVersion()
	var sig *rekorv2.Signature
	if hr := ent.GetSpec().GetHashedRekordV002(); hr != nil {
		e.Digest = hashName(hr.GetData().GetAlgorithm()) + ":" + hex.EncodeToString(hr.GetData().GetDigest())
		sig = hr.GetSignature()
	} else if ds := ent.GetSpec().GetDsseV002(); ds != nil {
		e.Digest = hashName(ds.GetPayloadHash().GetAlgorithm()) + ":" + hex.EncodeToString(ds.GetPayloadHash().GetDigest())
		if len(ds.GetSignatures()) > 0 {
			sig = ds.GetSignatures()[0]
		}
	}
	v := sig.GetVerifier()
	e.KeyDetails = v.GetKeyDetails().String()
	if der := v.GetX509Certificate().GetRawBytes(); der != nil {
		if c, err := x509.ParseCertificate(der); err == nil {
			e.Identity = certIdentity(c)
			if ext, err := certext.FromCertificate(c); err == nil {
				e.Issuer = ext.Issuer
			}
		}
	} else if der := v.GetPublicKey().GetRawBytes(); der != nil {
		s := sha256.Sum256(der)
		e.PublicKeySHA256 = hex.EncodeToString(s[:])
	}
	return nil
}

func newLogEntryCmd() *cobra.Command {
	var l logFlags
	cmd := &cobra.Command{
		Use:   "entry INDEX",
		Short: "Show a log entry by index, proven included in the verified checkpoint",
		Long: `Read entry INDEX from the log's entry bundles (C2SP tlog-tiles), show what
was logged (kind, digest, signer) and prove, from the tiles, that it is
included in the latest checkpoint, whose signature is verified against the
trusted root.

Exit status: 0 shown and proven; 1 fetch failed or a proof does not verify;
2 usage error (including an index beyond the log).
` + trustHelpVerify,
		Example: `  signet log entry 42 --server http://127.0.0.1:8080
  signet log entry 42 --trusted-root trusted_root.json --log https://log.example.com -o json`,
		Args: exactArgs(1, "INDEX"),
		RunE: func(cmd *cobra.Command, args []string) error {
			index, err := parseIndex("INDEX", args[0])
			if err != nil {
				return err
			}
			o, err := l.open(cmd)
			if err != nil {
				return err
			}
			size := o.checkpoint.Size
			if index >= size {
				return usageError{fmt.Errorf("INDEX %d is beyond the log: its latest verified checkpoint covers %d entries (a just-logged entry appears in the next checkpoint, within about a second)", index, size)}
			}
			ctx := cmd.Context()
			eb, err := client.GetEntryBundle(ctx, o.fetcher.ReadEntryBundle, index/256, size)
			if err != nil {
				return fmt.Errorf("log %s: %w", o.log.BaseURL, err)
			}
			if int(index%256) >= len(eb.Entries) {
				return fmt.Errorf("log %s: entry bundle %d holds %d entries, not entry %d", o.log.BaseURL, index/256, len(eb.Entries), index)
			}
			body := eb.Entries[index%256]
			leaf := rfc6962.DefaultHasher.HashLeaf(body)
			e := &entryJSON{LogURL: o.log.BaseURL, LogIndex: index, TreeSize: size, LeafHash: hex.EncodeToString(leaf)}
			if json.Valid(body) {
				e.Body = body
			} else {
				e.Body, _ = json.Marshal(base64.StdEncoding.EncodeToString(body))
			}
			// Prove inclusion before interpreting the body: an entry that is
			// not in the checkpoint is not worth describing.
			hashes, err := o.inclusion(ctx, index, leaf)
			if err != nil {
				return err
			}
			e.InclusionVerified, e.InclusionProof = true, hexAll(hashes)
			if err := describeEntry(e, body); err != nil {
				return err
			}
			if l.out.json() {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "entry %d of %s: included in the verified checkpoint (tree size %d, %d proof hashes)\n", index, e.LogURL, size, len(hashes))
			fmt.Fprintf(w, "  kind       %s %s\n  digest     %s\n  key        %s\n", e.Kind, e.APIVersion, e.Digest, e.KeyDetails)
			if e.Identity != "" {
				fmt.Fprintf(w, "  signer     %s\n  issuer     %s\n", e.Identity, e.Issuer)
			}
			if e.PublicKeySHA256 != "" {
				fmt.Fprintf(w, "  public key sha256 %s\n", e.PublicKeySHA256)
			}
			fmt.Fprintf(w, "  leaf hash  %s\n", e.LeafHash)
			return nil
		},
	}
	l.add(cmd)
	return cmd
}

// proofJSON is an inclusion or consistency proof in --output json.
type proofJSON struct {
	LogURL string `json:"logUrl"`
	Type   string `json:"type"` // "inclusion" or "consistency"
	// Inclusion: the entry; consistency: the older tree.
	LogIndex    *uint64 `json:"logIndex,omitempty"`
	LeafHash    string  `json:"leafHash,omitempty"`
	OldTreeSize uint64  `json:"oldTreeSize,omitempty"`
	OldRootHash string  `json:"oldRootHash,omitempty"` // base64
	// OldCheckpointVerified: the old root came from a signed checkpoint
	// (--from-checkpoint), not from the tiles.
	OldCheckpointVerified bool     `json:"oldCheckpointVerified,omitempty"`
	TreeSize              uint64   `json:"treeSize"`
	RootHash              string   `json:"rootHash"` // base64
	Hashes                []string `json:"hashes"`   // hex
	Verified              bool     `json:"verified"`
}

func newLogProofCmd() *cobra.Command {
	var (
		l        logFlags
		index    string
		fromSize string
		fromCP   string
	)
	cmd := &cobra.Command{
		Use:   "proof --index N | --from-checkpoint FILE | --from-size M",
		Short: "Prove an entry's inclusion, or the log's consistency since an earlier checkpoint",
		Long: `Build a Merkle proof from the log's tiles and verify it against the latest
checkpoint, itself verified against the trusted root:

  --index N               inclusion: entry N is in the current tree
  --from-checkpoint FILE  consistency: the tree of a checkpoint you saved
                          earlier ('signet log checkpoint --save') is a prefix
                          of today's; the saved one is verified too. This is
                          what proves the log was not rewritten.
  --from-size M           consistency from size M, with the old root computed
                          from today's tiles: shows the proof, but only a
                          root you saw earlier makes it a guarantee.

Exit status: 0 proof verified; 1 fetch failed or a proof does not verify;
2 usage error.
` + trustHelpVerify,
		Example: `  signet log proof --index 42 --server http://127.0.0.1:8080
  signet log checkpoint --server $URL --save old.cp   # …days later:
  signet log proof --from-checkpoint old.cp --server $URL`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set := 0
			for _, s := range []string{index, fromSize, fromCP} {
				if s != "" {
					set++
				}
			}
			if set != 1 {
				return usageError{errors.New("give exactly one of --index N, --from-checkpoint FILE or --from-size M")}
			}
			var oldNote []byte
			if fromCP != "" {
				var err error
				if oldNote, err = os.ReadFile(fromCP); err != nil {
					return usageError{fmt.Errorf("--from-checkpoint: %v", err)}
				}
			}
			o, err := l.open(cmd)
			if err != nil {
				return err
			}
			ctx, size := cmd.Context(), o.checkpoint.Size
			p := &proofJSON{LogURL: o.log.BaseURL, TreeSize: size, RootHash: base64.StdEncoding.EncodeToString(o.checkpoint.Hash)}
			switch {
			case index != "":
				n, err := parseIndex("--index", index)
				if err != nil {
					return err
				}
				if n >= size {
					return usageError{fmt.Errorf("--index %d is beyond the log: its latest verified checkpoint covers %d entries (a just-logged entry appears in the next checkpoint, within about a second)", n, size)}
				}
				eb, err := client.GetEntryBundle(ctx, o.fetcher.ReadEntryBundle, n/256, size)
				if err != nil {
					return fmt.Errorf("log %s: %w", o.log.BaseURL, err)
				}
				if int(n%256) >= len(eb.Entries) {
					return fmt.Errorf("log %s: entry bundle %d holds %d entries, not entry %d", o.log.BaseURL, n/256, len(eb.Entries), n)
				}
				leaf := rfc6962.DefaultHasher.HashLeaf(eb.Entries[n%256])
				hashes, err := o.inclusion(ctx, n, leaf)
				if err != nil {
					return err
				}
				p.Type, p.LogIndex, p.LeafHash, p.Hashes = "inclusion", &n, hex.EncodeToString(leaf), hexAll(hashes)
			default:
				var oldSize uint64
				var oldRoot []byte
				if oldNote != nil {
					old, err := verify.OpenCheckpoint(o.log, oldNote)
					if err != nil {
						return fmt.Errorf("--from-checkpoint %s: %w", fromCP, err)
					}
					oldSize, oldRoot, p.OldCheckpointVerified = old.Size, old.Hash, true
				} else {
					if oldSize, err = parseIndex("--from-size", fromSize); err != nil {
						return err
					}
				}
				if oldSize > size {
					return fmt.Errorf("the old tree (size %d) is larger than the log's verified checkpoint (size %d): the log has been truncated or forked, or serves a stale checkpoint", oldSize, size)
				}
				if oldRoot == nil {
					nodes, err := client.FetchRangeNodes(ctx, oldSize, o.fetcher.ReadTile)
					if err != nil {
						return fmt.Errorf("log %s: reading tiles for size %d: %w", o.log.BaseURL, oldSize, err)
					}
					rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
					r, err := rf.NewRange(0, oldSize, nodes)
					if err != nil {
						return fmt.Errorf("log %s: tiles for size %d: %w", o.log.BaseURL, oldSize, err)
					}
					if oldRoot, err = r.GetRootHash(nil); err != nil {
						return err
					}
					if oldSize == 0 {
						oldRoot = rfc6962.DefaultHasher.EmptyRoot()
					}
				}
				pb, err := client.NewProofBuilder(ctx, size, o.fetcher.ReadTile)
				if err != nil {
					return fmt.Errorf("log %s: reading tiles: %w", o.log.BaseURL, err)
				}
				hashes, err := pb.ConsistencyProof(ctx, oldSize, size)
				if err != nil {
					return fmt.Errorf("log %s: building the consistency proof %d→%d: %w", o.log.BaseURL, oldSize, size, err)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, size, hashes, oldRoot, o.checkpoint.Hash); err != nil {
					return fmt.Errorf("log %s is NOT consistent with the old tree (size %d, root %s): %w", o.log.BaseURL, oldSize, base64.StdEncoding.EncodeToString(oldRoot), err)
				}
				p.Type, p.OldTreeSize, p.OldRootHash, p.Hashes = "consistency", oldSize, base64.StdEncoding.EncodeToString(oldRoot), hexAll(hashes)
			}
			p.Verified = true
			if l.out.json() {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			p.print(cmd.OutOrStdout())
			return nil
		},
	}
	l.add(cmd)
	f := cmd.Flags()
	f.StringVar(&index, "index", "", "prove the inclusion of entry N")
	f.StringVar(&fromCP, "from-checkpoint", "", "prove consistency with this saved signed checkpoint")
	f.StringVar(&fromSize, "from-size", "", "prove consistency from tree size M")
	return cmd
}

func (p *proofJSON) print(w io.Writer) {
	if p.Type == "inclusion" {
		fmt.Fprintf(w, "inclusion proof verified: entry %d (leaf %s) is in %s at tree size %d\n", *p.LogIndex, p.LeafHash, p.LogURL, p.TreeSize)
	} else {
		from := "computed from the tiles"
		if p.OldCheckpointVerified {
			from = "from your signed checkpoint"
		}
		fmt.Fprintf(w, "consistency proof verified: %s at tree size %d extends the tree of size %d (root %s, %s)\n", p.LogURL, p.TreeSize, p.OldTreeSize, p.OldRootHash, from)
	}
	fmt.Fprintf(w, "  root hash  %s (verified checkpoint)\n", p.RootHash)
	for i, h := range p.Hashes {
		fmt.Fprintf(w, "  hash %-3d   %s\n", i, h)
	}
}

// searchJSON is one found attestation in --output json.
type searchJSON struct {
	ID            string          `json:"id"`
	PredicateType string          `json:"predicateType"`
	Subjects      []rekor.Subject `json:"subjects"`
	Identity      string          `json:"identity"`
	Issuer        string          `json:"issuer"`
	StoredTime    time.Time       `json:"storedTime"`
	LogIndex      int64           `json:"logIndex"`
	LogID         string          `json:"logId"`
}

// searchResult is `signet log search --output json`: the query and what matched.
type searchResult struct {
	Server        string       `json:"server"`
	Digest        string       `json:"digest,omitempty"`
	PredicateType string       `json:"predicateType,omitempty"`
	Identity      string       `json:"identity,omitempty"`
	Issuer        string       `json:"issuer,omitempty"`
	Attestations  []searchJSON `json:"attestations"`
}

func newLogSearchCmd() *cobra.Command {
	var (
		out                                outputFormat
		trustSrc                           trustSource
		digest, typeName, identity, issuer string
		limit                              int
	)
	cmd := &cobra.Command{
		Use:   "search --digest sha256:HEX|FILE [--type T] [--identity ID]",
		Short: "Find attestations in a signet server's attestation store",
		Long: `Ask a signet server's attestation store for the attestations about an
artifact (--digest: a sha256:<hex> digest, or a file to hash), of a predicate
type (--type), or by a signer (--identity, optionally --issuer). Filters
combine. Results come newest first.

What the server answers is a lead, not proof: to rely on an attestation,
verify its bundle with 'signet verify-blob-attestation'.

Exit status: 0 searched (even with no results); 1 the server failed;
2 usage error.`,
		Example: `  signet log search --digest dist/app.tar.gz --server http://127.0.0.1:8080
  signet log search --digest sha256:4b8e… --type slsaprovenance1 -o json
  signet log search --identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if limit < 1 {
				return usageError{fmt.Errorf("--limit %d: give a positive number", limit)}
			}
			if issuer != "" && identity == "" {
				return usageError{errors.New("--issuer narrows --identity; give both")}
			}
			q := rekor.Query{Identity: identity, Issuer: issuer, PageSize: min(limit, 100)}
			if typeName != "" {
				var err error
				if q.PredicateType, err = predicateTypeArg(typeName); err != nil {
					return err
				}
			}
			if digest != "" {
				d, err := digestArg(digest)
				if err != nil {
					return err
				}
				q.Digest = d
			}
			if q.Digest == "" && q.PredicateType == "" && q.Identity == "" {
				return usageError{errors.New("give at least one of --digest, --type or --identity")}
			}
			srv, err := trustSrc.serverURL()
			if err != nil {
				return err
			}
			if srv == "" {
				return usageError{fmt.Errorf("log search asks a signet server: pass --server URL (or set $%s)", serverEnv)}
			}
			found, err := searchAll(cmd.Context(), srv, q, limit)
			if err != nil {
				return err
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), searchResult{Server: srv, Digest: q.Digest, PredicateType: q.PredicateType, Identity: q.Identity, Issuer: q.Issuer, Attestations: found})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d attestation(s) at %s\n", len(found), srv)
			for _, a := range found {
				fmt.Fprintf(w, "  %s  %s\n", a.ID, a.PredicateType)
				for _, s := range a.Subjects {
					fmt.Fprintf(w, "      subject  %s", s.Name)
					algs := make([]string, 0, len(s.Digest))
					for alg := range s.Digest {
						algs = append(algs, alg)
					}
					sort.Strings(algs)
					for _, alg := range algs {
						fmt.Fprintf(w, " %s:%s", alg, s.Digest[alg])
					}
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "      signer   %s (issuer %s)\n      logged   entry %d, stored %s\n", a.Identity, a.Issuer, a.LogIndex, a.StoredTime.Format(time.RFC3339))
			}
			return nil
		},
	}
	trustSrc.addServer(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&digest, "digest", "", "artifact digest sha256:<hex>, or a file to hash")
	f.StringVar(&typeName, "type", "", "predicate type: slsaprovenance1, spdxjson, cyclonedx or a URI")
	f.StringVar(&identity, "identity", "", "signer identity (certificate SAN), exactly")
	f.StringVar(&issuer, "issuer", "", "signer OIDC issuer, exactly (with --identity)")
	f.IntVar(&limit, "limit", 100, "stop after this many results")
	out.add(f)
	return cmd
}

// digestArg accepts "sha256:<hex>" or the path of a file to hash.
func digestArg(s string) (string, error) {
	if alg, h, ok := strings.Cut(s, ":"); ok && alg == "sha256" {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return "", usageError{fmt.Errorf("--digest %q: a sha256 digest is 64 hex digits", s)}
		}
		return "sha256:" + strings.ToLower(h), nil
	}
	if _, err := os.Stat(s); err != nil {
		return "", usageError{fmt.Errorf("--digest %q is neither sha256:<hex> nor a readable file (%v)", s, err)}
	}
	d, err := fileDigest(s)
	if err != nil {
		return "", usageError{fmt.Errorf("--digest: %v", err)}
	}
	return d.String(), nil
}

func searchAll(ctx context.Context, srv string, q rekor.Query, limit int) ([]searchJSON, error) {
	store, err := rekor.NewAttestationStore(srv, httpClient())
	if err != nil {
		return nil, usageError{fmt.Errorf("--server: %w", err)}
	}
	found := []searchJSON{}
	for {
		page, next, err := store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			if len(found) == limit {
				return found, nil
			}
			found = append(found, searchJSON{ID: a.ID, PredicateType: a.PredicateType, Subjects: a.Subjects, Identity: a.Identity, Issuer: a.Issuer,
				StoredTime: a.StoredTime.UTC(), LogIndex: a.Entry.GetLogIndex(), LogID: hex.EncodeToString(a.Entry.GetLogId().GetKeyId())})
		}
		if next == "" {
			return found, nil
		}
		q.PageToken = next
	}
}
