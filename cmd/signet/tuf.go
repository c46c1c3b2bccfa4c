package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/signet-dev/signet/server/tuf"
)

// passphraseEnv holds the passphrase of encrypted key files by default.
const passphraseEnv = "SIGNET_TUF_PASSPHRASE"

const tufCeremonyHelp = `The key ceremony of the server's TUF repository: the root and targets
roles are signed offline by threshold keys held by different people; the
server holds only the online key, which signs snapshot and timestamp and
re-signs them before they expire.

Runbook (docs/trust.md#the-key-ceremony):
  1. every key holder:   signet tuf keygen --out alice.key     (gives alice.key.pub)
     the operator:       signet tuf keygen --out online.key    (the server's tuf.onlineKey)
  2. the coordinator:    signet tuf init --dir ceremony --root-key alice.key.pub \
                           --root-key bob.key.pub --root-key carol.key.pub --root-threshold 2 \
                           --targets-key alice.key.pub --online-key online.key.pub
  3. fetch the trust files: signet trust --server URL --out trust
     signet tuf targets --dir ceremony --trusted-root trust/trusted_root.json \
       --signing-config trust/signing_config.json
  4. each key holder in turn (the directory travels, the keys do not):
       signet tuf sign --dir ceremony --role root --key alice.key
       signet tuf sign --dir ceremony --role targets --key alice.key
     signet tuf status --dir ceremony says what is still missing.
  5. signet tuf publish --dir ceremony --to /var/lib/signet-tuf
     then set tuf.dir: /var/lib/signet-tuf and tuf.onlineKey: online.key in the
     server's config and restart it. Hand out ceremony/1.root.json as the
     root clients pin (cosign initialize --root, signet trust --root).
Later: 'signet tuf root new-version' rotates keys (signed by a threshold of
the old root keys and of the new), 'signet tuf targets' publishes changed
trust files.

Keys are PEM files (Ed25519 or ECDSA P-256, PKCS#8 or SEC 1), encrypted ones
(cosign's and signet's format, PKCS#8 ENCRYPTED) with the passphrase in
$` + passphraseEnv + ` (or the variable --passphrase-env names). Where only the
public key is needed, a public key file or the private key file works.
A key in a hardware token or KMS is named by its URI (pkcs11:token=…;object=…,
awskms://…), as everywhere in signet ('signet ca --help').`

func newTUFCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tuf",
		Short: "Key ceremony for the server's TUF repository: offline threshold root and targets keys",
		Long:  tufCeremonyHelp,
	}
	root := &cobra.Command{Use: "root", Short: "Root metadata versions: rotate keys, renew expiry"}
	root.AddCommand(newTUFRootNewVersionCmd())
	cmd.AddCommand(newTUFKeygenCmd(), newTUFInitCmd(), root, newTUFTargetsCmd(), newTUFSignCmd(), newTUFStatusCmd(), newTUFPublishCmd())
	return cmd
}

// passphraseFlag names the environment variable holding the passphrase.
type passphraseFlag struct{ env string }

func (p *passphraseFlag) add(f *pflag.FlagSet) {
	f.StringVar(&p.env, "passphrase-env", passphraseEnv, "environment variable holding the passphrase of encrypted key files")
}

func (p *passphraseFlag) get() tuf.Passphrase {
	return func() ([]byte, error) {
		if v := os.Getenv(p.env); v != "" {
			return []byte(v), nil
		}
		return nil, nil
	}
}

// keyErr adds the remedy for a key that needs a passphrase.
func (p *passphraseFlag) keyErr(flag string, err error) error {
	if errors.Is(err, tuf.ErrNeedPassphrase) {
		return usageError{fmt.Errorf("%s: %w: set $%s to its passphrase", flag, err, p.env)}
	}
	return usageError{fmt.Errorf("%s: %w", flag, err)}
}

// expiryFlag is a validity period: a Go duration, or days as "365d".
type expiryFlag struct{ d time.Duration }

func (e *expiryFlag) String() string {
	if e.d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(e.d/(24*time.Hour))) + "d"
	}
	return e.d.String()
}
func (e *expiryFlag) Type() string { return "duration" }
func (e *expiryFlag) Set(s string) error {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("%q: days as 365d, or a duration as 720h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: days as 365d, or a duration as 720h", s)
		}
	}
	if d <= 0 {
		return fmt.Errorf("%q: must be positive", s)
	}
	e.d = d
	return nil
}

// roleFlags are the key sets init and new-version take.
type roleFlags struct {
	rootKeys, targetsKeys       []string
	rootThreshold, targetsThres int
	online                      string
	expires                     expiryFlag
	pass                        passphraseFlag
}

func (r *roleFlags) add(f *pflag.FlagSet, first bool) {
	verb := "a key of the root role"
	if !first {
		verb = "the new root role's keys, replacing the old set (repeat; default: unchanged)"
	}
	f.StringArrayVar(&r.rootKeys, "root-key", nil, verb+": a public or private key file (repeat for each key holder)")
	f.IntVar(&r.rootThreshold, "root-threshold", 0, "how many root keys must sign each root version")
	f.StringArrayVar(&r.targetsKeys, "targets-key", nil, "a key of the targets role (repeat)")
	f.IntVar(&r.targetsThres, "targets-threshold", 0, "how many targets keys must sign the targets (default 1, or unchanged)")
	f.StringVar(&r.online, "online-key", "", "the server's online key (its tuf.onlineKey, public or private file): signs snapshot and timestamp")
	r.expires.d = tuf.DefaultRootExpiry
	f.Var(&r.expires, "expires", "how long the root is valid (e.g. 365d)")
	r.pass.add(f)
}

// change is the roles the flags set; first: init, where root, targets and
// the online key are required.
func (r *roleFlags) change(first bool) (tuf.RootChange, error) {
	ch := tuf.RootChange{Roles: map[string]*tuf.RoleKeys{}, Expires: time.Now().Add(r.expires.d)}
	set := func(role, flag string, refs []string, threshold int, thresholdFlag string, defThreshold int) error {
		if len(refs) == 0 {
			if first {
				return usageError{fmt.Errorf("a first root needs %s keys: pass --%s FILE (repeat for each)", role, flag)}
			}
			if threshold != 0 {
				return usageError{fmt.Errorf("--%s without --%s: give the role's whole new key set", thresholdFlag, flag)}
			}
			return nil
		}
		if threshold == 0 {
			threshold = defThreshold
		}
		if threshold < 1 || threshold > len(refs) {
			return usageError{fmt.Errorf("--%s %d with %d --%s: it must be 1 to %d", thresholdFlag, threshold, len(refs), flag, len(refs))}
		}
		rk := &tuf.RoleKeys{Threshold: threshold}
		for _, ref := range refs {
			k, err := tuf.LoadPublicKey(ref, r.pass.get())
			if err != nil {
				return r.pass.keyErr("--"+flag, err)
			}
			rk.Keys = append(rk.Keys, k)
		}
		ch.Roles[role] = rk
		return nil
	}
	if first && r.rootThreshold == 0 {
		return ch, usageError{errors.New("a first root needs --root-threshold N: how many of the --root-key holders must sign (2 or more for an offline root)")}
	}
	if err := set(metadata.ROOT, "root-key", r.rootKeys, r.rootThreshold, "root-threshold", 0); err != nil {
		return ch, err
	}
	if err := set(metadata.TARGETS, "targets-key", r.targetsKeys, r.targetsThres, "targets-threshold", 1); err != nil {
		return ch, err
	}
	if r.online == "" && first {
		return ch, usageError{errors.New("a first root needs --online-key FILE: the key the server signs snapshot and timestamp with (make it with 'signet tuf keygen')")}
	}
	if r.online != "" {
		if err := set(metadata.TIMESTAMP, "online-key", []string{r.online}, 1, "online-key", 1); err != nil {
			return ch, err
		}
		ch.Roles[metadata.SNAPSHOT] = ch.Roles[metadata.TIMESTAMP]
	}
	return ch, nil
}

func needDir(dir string) error {
	if dir == "" {
		return usageError{errors.New("--dir DIR is required: the ceremony directory")}
	}
	return nil
}

func newTUFKeygenCmd() *cobra.Command {
	var (
		out, kind string
		pass      passphraseFlag
		o         outputFormat
	)
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make a key pair for a TUF role: FILE (private) and FILE.pub",
		Long: `Make a key pair: the private key in FILE (0600), the public key in
FILE.pub to hand to the ceremony's coordinator. With $` + passphraseEnv + `
set (or the variable --passphrase-env names), the private key is encrypted
with it (scrypt and secretbox, cosign's format). Keep root and targets keys
offline; the online key goes to the server (tuf.onlineKey), unencrypted.`,
		Example: `  SIGNET_TUF_PASSPHRASE=… signet tuf keygen --out alice.key
  signet tuf keygen --out online.key --type ecdsa-p256`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if out == "" {
				return usageError{errors.New("--out FILE is required")}
			}
			if _, err := os.Stat(out); err == nil {
				return usageError{fmt.Errorf("--out %s exists: a key file is never overwritten; choose another name", out)}
			}
			pw, _ := pass.get()()
			priv, pub, err := tuf.GenerateKey(kind, pw)
			if err != nil {
				return usageError{fmt.Errorf("--type: %w", err)}
			}
			if err := os.WriteFile(out, priv, 0o600); err != nil {
				return usageError{fmt.Errorf("--out: %w", err)}
			}
			if err := os.WriteFile(out+".pub", pub, 0o644); err != nil {
				return usageError{fmt.Errorf("--out: %w", err)}
			}
			k, err := tuf.LoadPublicKey(out+".pub", nil)
			if err != nil {
				return err
			}
			id, _ := k.ID()
			res := struct {
				Key       string `json:"key"`
				PublicKey string `json:"publicKey"`
				KeyID     string `json:"keyId"`
				Type      string `json:"type"`
				Encrypted bool   `json:"encrypted"`
			}{out, out + ".pub", id, kind, len(pw) > 0}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private%s) and %s\nkey ID %s\n", out, map[bool]string{true: ", encrypted", false: ", NOT encrypted"}[res.Encrypted], res.PublicKey, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the private key file to write; the public key goes to FILE.pub")
	cmd.Flags().StringVar(&kind, "type", "ed25519", "key type: ed25519 or ecdsa-p256")
	pass.add(cmd.Flags())
	o.add(cmd.Flags())
	return cmd
}

func newTUFInitCmd() *cobra.Command {
	var (
		dir string
		rf  roleFlags
		o   outputFormat
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR --root-key K… --root-threshold N --targets-key K… --online-key K",
		Short: "Start a ceremony: write 1.root.json, unsigned, naming the role keys",
		Long: `Write DIR/1.root.json naming the keys of each role, unsigned: the key
holders then sign it one at a time with 'signet tuf sign --role root'.
The root and targets keys stay offline; --online-key is the server's key
(tuf.onlineKey), which signs snapshot and timestamp. Only public keys are
needed here.`,
		Example: `  signet tuf init --dir ceremony --root-key alice.pub --root-key bob.pub --root-key carol.pub \
    --root-threshold 2 --targets-key alice.pub --targets-key bob.pub --online-key online.key.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			ch, err := rf.change(true)
			if err != nil {
				return err
			}
			st, err := (&tuf.Ceremony{Dir: dir}).Init(ch)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o, st)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory (created)")
	rf.add(cmd.Flags(), true)
	o.add(cmd.Flags())
	return cmd
}

func newTUFRootNewVersionCmd() *cobra.Command {
	var (
		dir string
		rf  roleFlags
		o   outputFormat
	)
	cmd := &cobra.Command{
		Use:   "new-version --dir DIR [--root-key K… --root-threshold N] [--targets-key K…] [--online-key K]",
		Short: "Write the next root version: rotate a role's keys, or renew the expiry",
		Long: `Write DIR/N+1.root.json from the complete N.root.json, unsigned, with the
key sets given replacing the old ones (a rotation: --root-key for the root
role, --targets-key for the targets role, --online-key for snapshot and
timestamp); roles not given keep their keys. With no key flags it renews
the expiry.

The new version must be signed by a threshold of the OLD root keys and a
threshold of the NEW ones (TUF 5.3.4): that is how clients that trust
version N come to trust N+1. Sign it with 'signet tuf sign --role root',
key holder by key holder, old and new; 'signet tuf status' shows both
thresholds. After rotating the online key, set the server's tuf.onlineKey
to the new key when you publish.`,
		Example: `  signet tuf root new-version --dir ceremony --root-key bob.pub --root-key carol.pub \
    --root-key dave.pub --root-threshold 2
  signet tuf root new-version --dir ceremony --online-key online2.key.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			if len(rf.rootKeys) > 0 && rf.rootThreshold == 0 {
				return usageError{errors.New("--root-key replaces the root key set: give --root-threshold N with it")}
			}
			ch, err := rf.change(false)
			if err != nil {
				return err
			}
			st, err := (&tuf.Ceremony{Dir: dir}).NewRootVersion(ch)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o, st)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory")
	rf.add(cmd.Flags(), false)
	o.add(cmd.Flags())
	return cmd
}

func newTUFTargetsCmd() *cobra.Command {
	var (
		dir, trustedRoot, signingConfig string
		expires                         expiryFlag
		o                               outputFormat
	)
	expires.d = tuf.DefaultTargetsExpiry
	cmd := &cobra.Command{
		Use:   "targets --dir DIR --trusted-root FILE --signing-config FILE",
		Short: "Write the next targets version listing the trust files, unsigned",
		Long: `Write DIR/N.targets.json (the next version) listing the trust files under
the names Sigstore's root-signing repository uses (` + tuf.TrustedRootTarget + `,
` + tuf.SigningConfigTarget + `), and the files under DIR/targets/. The
targets key holders then sign it with 'signet tuf sign --role targets'.
Get the files with 'signet trust --server URL --out DIR' (its
signing_config.json is the v0.2 signing config), check their fingerprints,
or take them from wherever the operator keeps them.`,
		Example: `  signet tuf targets --dir ceremony --trusted-root trust/trusted_root.json --signing-config trust/signing_config.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			files := map[string][]byte{}
			for _, f := range []struct{ flag, path, name string }{{"--trusted-root", trustedRoot, tuf.TrustedRootTarget}, {"--signing-config", signingConfig, tuf.SigningConfigTarget}} {
				if f.path == "" {
					continue
				}
				b, err := os.ReadFile(f.path)
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", f.flag, err)}
				}
				files[f.name] = b
			}
			if len(files) == 0 {
				return usageError{errors.New("no targets: pass --trusted-root FILE and --signing-config FILE")}
			}
			st, err := (&tuf.Ceremony{Dir: dir}).Targets(files, time.Now().Add(expires.d))
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o, st)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory")
	cmd.Flags().StringVar(&trustedRoot, "trusted-root", "", "the trusted_root.json to publish")
	cmd.Flags().StringVar(&signingConfig, "signing-config", "", "the signing config (v0.2) to publish as "+tuf.SigningConfigTarget)
	cmd.Flags().Var(&expires, "expires", "how long the targets are valid (e.g. 182d)")
	o.add(cmd.Flags())
	return cmd
}

func newTUFSignCmd() *cobra.Command {
	var (
		dir, role, key string
		pass           passphraseFlag
		o              outputFormat
	)
	cmd := &cobra.Command{
		Use:   "sign --dir DIR --role root|targets --key FILE",
		Short: "Add one key holder's signature to the newest root or targets version",
		Long: `Sign the newest root (--role root) or targets (--role targets) version in
DIR with one key, replacing an earlier signature by the same key. A key
whose signature would not count (not a key of that role, in the newest
root or, for a new root version, the one before it) is refused. Prints
what is still missing.`,
		Example: `  SIGNET_TUF_PASSPHRASE=… signet tuf sign --dir ceremony --role root --key alice.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			if role != metadata.ROOT && role != metadata.TARGETS {
				return usageError{fmt.Errorf("--role %q: root or targets (the server's online key signs snapshot and timestamp)", role)}
			}
			if key == "" {
				return usageError{errors.New("--key FILE is required: your private key file")}
			}
			s, err := tuf.LoadSigner(key, pass.get())
			if err != nil {
				return pass.keyErr("--key", err)
			}
			st, err := (&tuf.Ceremony{Dir: dir}).Sign(role, s)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o, st)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory")
	cmd.Flags().StringVar(&role, "role", "", "root or targets")
	cmd.Flags().StringVar(&key, "key", "", "the private key file to sign with")
	pass.add(cmd.Flags())
	o.add(cmd.Flags())
	return cmd
}

func newTUFStatusCmd() *cobra.Command {
	var (
		dir string
		o   outputFormat
	)
	cmd := &cobra.Command{
		Use:   "status --dir DIR",
		Short: "Show the ceremony's root and targets: signatures, thresholds, expiry, what is missing",
		Long: `Show the newest root and targets versions in DIR: each threshold that
counts (for a new root version, the old root's and its own), which keys
signed and which may still sign, the expiry, and whether 'signet tuf
publish' would succeed (ready).

Exit status: 0 reported (ready or not: see ready in -o json); 1 the
directory holds no ceremony; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			st, err := (&tuf.Ceremony{Dir: dir}).Status()
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), o, st)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory")
	o.add(cmd.Flags())
	return cmd
}

func newTUFPublishCmd() *cobra.Command {
	var (
		dir, to string
		o       outputFormat
	)
	cmd := &cobra.Command{
		Use:   "publish --dir DIR --to PUBLISHED",
		Short: "Copy the complete root chain and targets to the directory the server serves (tuf.dir)",
		Long: `Check that the ceremony is complete (every root version signed by the
thresholds that count, the targets by the targets threshold, nothing
expired) and copy every root version, the newest targets and the target
files to PUBLISHED, the server's tuf.dir. A published file is never
replaced with other content, and nothing is written when anything is
refused. The server picks the new versions up at its next start; it signs
the snapshot and timestamp itself with tuf.onlineKey.`,
		Example: `  signet tuf publish --dir ceremony --to /var/lib/signet-tuf && systemctl restart signet`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if err := needDir(dir); err != nil {
				return err
			}
			if to == "" {
				return usageError{errors.New("--to DIR is required: the directory the server serves (its tuf.dir)")}
			}
			res, err := (&tuf.Ceremony{Dir: dir}).Publish(to)
			if err != nil {
				return err
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published root version %d and targets version %d to %s (%d files written, %d unchanged)\nrestart the server with tuf.dir: %s to serve them\n", res.RootVersion, res.TargetsVer, to, len(res.Written), len(res.Unchanged), to)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the ceremony directory")
	cmd.Flags().StringVar(&to, "to", "", "the published repository: the server's tuf.dir")
	o.add(cmd.Flags())
	return cmd
}

func printStatus(w io.Writer, o outputFormat, st *tuf.Status) error {
	if o.json() {
		return writeJSON(w, st)
	}
	role := func(r *tuf.RoleStatus) {
		state := "incomplete"
		if r.Complete {
			state = "signed"
		}
		if r.Expired {
			state += ", EXPIRED"
		}
		fmt.Fprintf(w, "%-8s %s  expires %s  (%s)\n", r.Role, r.File, r.Expires.Format(time.RFC3339), state)
		for _, th := range r.Thresholds {
			fmt.Fprintf(w, "  %d of %d %s keys of %s signed\n", th.Have, th.Want, r.Role, th.By)
			for _, id := range th.Signed {
				fmt.Fprintf(w, "    signed        %s\n", id)
			}
			for _, id := range th.Missing {
				fmt.Fprintf(w, "    may sign      %s\n", id)
			}
		}
	}
	fmt.Fprintf(w, "ceremony %s\n", st.Dir)
	role(st.Root)
	if st.Targets != nil {
		role(st.Targets)
	}
	for _, name := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		fmt.Fprintf(w, "%-8s online key %s (signed by the server)\n", name, strings.Join(st.Roles[name].KeyIDs, ", "))
	}
	if st.Ready {
		fmt.Fprintf(w, "ready: 'signet tuf publish --dir %s --to <tuf.dir>'\n", st.Dir)
		return nil
	}
	fmt.Fprintln(w, "not ready to publish:")
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}
