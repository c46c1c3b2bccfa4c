package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/tlog"
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

// open picks the log, fetches its checkpoint and verifies it.
func (l *logFlags) open(cmd *cobra.Command) (*tlog.Log, error) {
	if err := l.out.check(); err != nil {
		return nil, err
	}
	hc := httpClient()
	root, err := l.trust.root(cmd.Context(), hc, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	want, from := l.logURL, "--log"
	if want == "" {
		if want, err = l.trust.serverURL(); err != nil {
			return nil, err
		}
		from = "--server"
	}
	o, err := tlog.Open(cmd.Context(), root.Root, want, hc)
	var choice *tlog.LogChoiceError
	switch {
	case errors.As(err, &choice) && choice.Want == "":
		return nil, usageError{fmt.Errorf("the trusted root lists %d logs (%s); pick one with --log URL", len(choice.Known), strings.Join(choice.Known, ", "))}
	case errors.As(err, &choice):
		return nil, usageError{fmt.Errorf("%s %s is not a log in the trusted root %s (it lists %s); pass --log with one of those", from, choice.Want, root.Source, strings.Join(choice.Known, ", "))}
	}
	return o, err
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
	// VerifierKey is the log key as a C2SP signed-note verifier key, what
	// a witness is configured with (Ed25519 logs only).
	VerifierKey string `json:"verifierKey,omitempty"`
	// Witnesses cosigned the checkpoint, as --witness-policy required.
	Witnesses []string `json:"witnesses,omitempty"`
}

func checkpointOf(o *tlog.Log) checkpointJSON {
	cp := o.Checkpoint()
	c := checkpointJSON{LogURL: o.Trusted().BaseURL, Origin: cp.Origin, TreeSize: cp.Size,
		RootHash: base64.StdEncoding.EncodeToString(cp.Hash), Note: string(cp.Note), Verified: true}
	if k, ok := o.Trusted().PublicKey.(ed25519.PublicKey); ok {
		c.VerifierKey, _ = note.NewEd25519VerifierKey(o.Trusted().Origin, k)
	}
	return c
}

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log checkpoint|entry|proof|search|monitor",
		Short: "Inspect a transparency log: checkpoint, entries, proofs, attestation search",
		Long: `Read a Rekor v2 transparency log through its C2SP tlog-tiles API and verify
what it serves against the trusted root: the checkpoint's signature by the log
key, each entry's inclusion in that checkpoint, and consistency between two
checkpoints. 'search' asks a signet server's attestation store; 'monitor'
follows the log and stops at the first inconsistency, with the evidence.
` + trustHelpVerify,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("name a subcommand: checkpoint, entry, proof, search or monitor\nRun '%s --help' for usage", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newLogCheckpointCmd(), newLogEntryCmd(), newLogProofCmd(), newLogSearchCmd(), newLogMonitorCmd())
	return cmd
}

func newLogCheckpointCmd() *cobra.Command {
	var (
		l       logFlags
		save    string
		witness policyFlags
	)
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Show the log's latest checkpoint, verified against the trusted root",
		Long: `Fetch the log's latest checkpoint (C2SP signed note) and verify its signature
with the log key in the trusted root. --save writes the signed note to a file;
'signet log proof --from-checkpoint FILE' later proves the log only grew
since (no entry was changed or removed). It also prints the log's verifier
key, the line a witness is configured with; --witness-policy FILE checks
that the witnesses the policy requires cosigned the checkpoint.

Exit status: 0 verified; 1 fetch failed, the signature does not verify or
the witness policy is not met; 2 usage error.
` + trustHelpVerify,
		Example: `  signet log checkpoint --server http://127.0.0.1:8080 --save cp-monday.txt
  signet log checkpoint --trusted-root trusted_root.json --log https://log.example.com -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pol verify.Policy
			if err := witness.witnesses(&pol); err != nil {
				return err
			}
			o, err := l.open(cmd)
			if err != nil {
				return err
			}
			var cosigned []string
			if pol.Witnesses != nil {
				if cosigned, err = pol.Witnesses.Check(o.Checkpoint().Note); err != nil {
					return err
				}
			}
			if save != "" {
				if err := os.WriteFile(save, o.Checkpoint().Note, 0o644); err != nil {
					return usageError{fmt.Errorf("--save: %v", err)}
				}
			}
			c := checkpointOf(o)
			c.Witnesses = cosigned
			if l.out.json() {
				return writeJSON(cmd.OutOrStdout(), c)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "checkpoint of %s, signature verified (key ID %08x)\n", c.LogURL, o.Trusted().CheckpointKeyID)
			fmt.Fprintf(w, "  origin     %s\n  tree size  %d\n  root hash  %s\n", c.Origin, c.TreeSize, c.RootHash)
			if c.VerifierKey != "" {
				fmt.Fprintf(w, "  log vkey   %s\n", c.VerifierKey)
			}
			if pol.Witnesses != nil {
				fmt.Fprintf(w, "  witnesses  %s (policy met)\n", strings.Join(cosigned, ", "))
			}
			if save != "" {
				fmt.Fprintf(w, "  saved to   %s\n", save)
			}
			return nil
		},
	}
	l.add(cmd)
	cmd.Flags().StringVar(&save, "save", "", "write the signed checkpoint to this file")
	cmd.Flags().StringVar(&witness.witnessPolicy, "witness-policy", "", "require the cosignatures of the witnesses this policy file names (docs/verification.md)")
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

func hexAll(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// beyondLog is the usage error for an index the verified checkpoint does
// not cover yet.
func beyondLog(what string, index, size uint64, err error) error {
	if errors.Is(err, tlog.ErrBeyondTree) {
		return usageError{fmt.Errorf("%s %d is beyond the log: its latest verified checkpoint covers %d entries (a just-logged entry appears in the next checkpoint, within about a second)", what, index, size)}
	}
	return err
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
			size := o.Checkpoint().Size
			// Entry proves inclusion before the body is interpreted: an entry
			// that is not in the checkpoint is not worth describing.
			ent, err := o.Entry(cmd.Context(), index)
			if err != nil {
				return beyondLog("INDEX", index, size, err)
			}
			d, err := ent.Describe()
			if err != nil {
				return err
			}
			e := &entryJSON{LogURL: o.Trusted().BaseURL, LogIndex: index, TreeSize: size, LeafHash: hex.EncodeToString(ent.LeafHash),
				Kind: d.Kind, APIVersion: d.APIVersion, Digest: d.Digest, KeyDetails: d.KeyDetails,
				Identity: d.Identity, Issuer: d.Issuer, PublicKeySHA256: d.PublicKeySHA256,
				InclusionVerified: true, InclusionProof: hexAll(ent.Proof)}
			if json.Valid(ent.Body) {
				e.Body = ent.Body
			} else {
				e.Body, _ = json.Marshal(base64.StdEncoding.EncodeToString(ent.Body))
			}
			if l.out.json() {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "entry %d of %s: included in the verified checkpoint (tree size %d, %d proof hashes)\n", index, e.LogURL, size, len(ent.Proof))
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
			ctx, cp := cmd.Context(), o.Checkpoint()
			p := &proofJSON{LogURL: o.Trusted().BaseURL, TreeSize: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash)}
			switch {
			case index != "":
				n, err := parseIndex("--index", index)
				if err != nil {
					return err
				}
				ent, err := o.Entry(ctx, n)
				if err != nil {
					return beyondLog("--index", n, cp.Size, err)
				}
				p.Type, p.LogIndex, p.LeafHash, p.Hashes = "inclusion", &n, hex.EncodeToString(ent.LeafHash), hexAll(ent.Proof)
			default:
				var c *tlog.Consistency
				if oldNote != nil {
					// The only checkpoint left to verify is the saved one.
					var ce *tlog.CheckpointError
					if c, err = o.ConsistencyFrom(ctx, oldNote); errors.As(err, &ce) {
						return fmt.Errorf("--from-checkpoint %s: %w", fromCP, ce.Err)
					}
				} else {
					oldSize, perr := parseIndex("--from-size", fromSize)
					if perr != nil {
						return perr
					}
					c, err = o.ConsistencyProof(ctx, oldSize, nil)
				}
				if err != nil {
					return err
				}
				p.Type, p.OldTreeSize, p.OldRootHash, p.Hashes = "consistency", c.OldSize, base64.StdEncoding.EncodeToString(c.OldRoot), hexAll(c.Hashes)
				p.OldCheckpointVerified = c.OldSigned
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
		timestampFile                      string
	)
	cmd := &cobra.Command{
		Use:   "search --digest sha256:HEX|FILE [--type T] [--identity ID] | --timestamp FILE",
		Short: "Find attestations in a signet server's attestation store, or a timestamp's log entry",
		Long: `Ask a signet server's attestation store for the attestations about an
artifact (--digest: a sha256:<hex> digest, or a file to hash), of a predicate
type (--type), or by a signer (--identity, optionally --issuer). Filters
combine. Results come newest first.

What the server answers is a lead, not proof: to rely on an attestation,
verify its bundle with 'signet verify-blob-attestation'.

--timestamp FILE finds the log entries of the RFC 3161 timestamps in FILE (a
bundle, or a DER timestamp response): a signet TSA records every timestamp
it issues in the transparency log and hands the entry back with the
response (time transparency). Each entry is verified against the trusted
root, then read from the log and proven included in its current
checkpoint, so an auditor holding a timestamp can show the log recorded it.

Exit status: 0 searched (even with no results), or every timestamp was
found in the log; 1 the server failed, a timestamp or its entry does not
verify, or a timestamp carries no log entry; 2 usage error.`,
		Example: `  signet log search --digest dist/app.tar.gz --server http://127.0.0.1:8080
  signet log search --digest sha256:4b8e… --type slsaprovenance1 -o json
  signet log search --identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main
  signet log search --timestamp app.tar.gz.sigstore.json --trusted-root trusted_root.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if timestampFile != "" {
				if digest != "" || typeName != "" || identity != "" || issuer != "" {
					return usageError{errors.New("--timestamp searches the log, not the attestation store; give it without --digest, --type, --identity and --issuer")}
				}
				return searchTimestamps(cmd, &trustSrc, out, timestampFile)
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
	f.StringVar(&timestampFile, "timestamp", "", "find the log entries of the timestamps in this bundle or DER timestamp response")
	trustSrc.addTrustedRoot(f)
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
