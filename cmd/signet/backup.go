package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/signet-dev/signet/server"
)

// backupResult is `signet server backup|restore --output json`.
type backupResult struct {
	File         string      `json:"file,omitempty"` // backup: the archive written
	Dir          string      `json:"dir,omitempty"`  // restore: the data directory written
	Keys         bool        `json:"keys"`
	Logs         []backupLog `json:"logs"`
	Attestations int         `json:"attestations"`
	Files        int         `json:"files"`
	Created      time.Time   `json:"created"`
}

type backupLog struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"` // hex
	CT     bool   `json:"ct,omitempty"`
}

func newBackupResult(m *server.BackupManifest) backupResult {
	r := backupResult{Keys: m.Keys, Attestations: m.Attestations, Files: len(m.Files), Created: m.Created}
	for _, l := range m.Logs {
		r.Logs = append(r.Logs, backupLog{Origin: l.Origin, Size: l.Size, Root: hex.EncodeToString(l.Root), CT: l.StaticCT})
	}
	return r
}

func (r backupResult) print(w io.Writer) {
	for _, l := range r.Logs {
		what := "log"
		if l.CT {
			what = "CT log"
		}
		fmt.Fprintf(w, "  %-7s %s: %d entries, root %s\n", what, l.Origin, l.Size, l.Root)
	}
	if r.Attestations >= 0 {
		fmt.Fprintf(w, "  attestations.db: %d attestations\n", r.Attestations)
	}
}

const keysWarning = `WARNING: this backup holds the server's private keys (keys/, dev-oidc/).
Whoever reads it can issue certificates, sign log checkpoints and
timestamps as this server: store it encrypted, access-controlled, apart
from ordinary backups.`

const noKeysNote = `This backup holds no private keys. Keep keys/ (or the HSM/KMS token's own
backup) apart: restore needs them, and a log cannot continue under a new key.`

func newServerBackupCmd() *cobra.Command {
	var (
		admin, outPath string
		includeKeys    bool
		out            outputFormat
	)
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up a running server's data directory, consistently, while it serves",
		Long: `Take a backup of a running server through its admin listener (adminAddr):
the attestation database copied in one read transaction, each log (the
transparency log, its shards, the CT log) at the tree it held at that
moment, the TUF metadata, and with --include-keys the private key files.
The server keeps accepting writes meanwhile; what it acknowledges after the
backup is not in it.

The archive (a tar ending in a manifest with every file's SHA-256) is
written beside --out, restored into a scratch directory and checked there
(as 'signet server restore' would) before it is renamed to --out: a backup
this command reports done restores.

Keys are left out unless --include-keys: they are secrets, and belong in a
backup of their own. Keys in an HSM or KMS are references and never in a
backup. docs/operations.md ("Backup and restore") says what to do with it.`,
		Example: `  signet server backup --admin http://127.0.0.1:9090 --out /backups/
  signet server backup --admin http://127.0.0.1:9090 --out /backups/signet.tar --include-keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			u, err := url.Parse(admin)
			if admin == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("--admin %q: give the admin listener's URL, e.g. http://127.0.0.1:9090 (the server's adminAddr; the banner prints it as \"admin\")", admin)}
			}
			if outPath == "" {
				return usageError{errors.New("--out is required: a new file, or a directory to write signet-backup-<time>.tar into")}
			}
			dest := outPath
			if fi, err := os.Stat(outPath); err == nil && fi.IsDir() {
				dest = filepath.Join(outPath, "signet-backup-"+time.Now().UTC().Format("20060102T150405Z")+".tar")
			}
			if _, err := os.Stat(dest); err == nil {
				return fmt.Errorf("%s exists; give a new file name (a backup never overwrites one)", dest)
			}
			klog.SetOutput(io.Discard) // tessera's fsck progress
			klog.LogToStderr(false)
			m, err := takeBackup(cmd.Context(), strings.TrimRight(admin, "/"), dest, includeKeys)
			if err != nil {
				return err
			}
			res := newBackupResult(m)
			res.File = dest
			if includeKeys {
				// On stderr, also with -o json: a script's log shows it.
				fmt.Fprintln(cmd.ErrOrStderr(), keysWarning)
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "backup written and checked: %s (%d files)\n", dest, res.Files)
			res.print(w)
			if !includeKeys {
				fmt.Fprintln(w, noKeysNote)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "admin", "", "URL of the running server's admin listener (adminAddr), e.g. http://127.0.0.1:9090")
	f.StringVar(&outPath, "out", "", "file to write the backup to (must not exist), or a directory to write signet-backup-<time>.tar into")
	f.BoolVar(&includeKeys, "include-keys", false, "also back up the private key files (keys/, dev-oidc/): secrets; store such a backup encrypted")
	out.add(f)
	return cmd
}

// takeBackup downloads the archive beside dest, checks that it restores,
// and renames it to dest.
func takeBackup(ctx context.Context, admin, dest string, keys bool) (*server.BackupManifest, error) {
	u := admin + "/backup"
	if keys {
		u += "?keys=include"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the admin listener %s cannot be reached: %w; check --admin against the server's adminAddr", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s answered 404: it is not the admin listener of a signet server that takes backups (--admin names adminAddr, not the public URL)", u)
		}
		return nil, fmt.Errorf("%s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	partial := dest + ".partial"
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing the backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(partial)
		}
	}()
	_, err = io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("receiving the backup from %s: %w", u, err)
	}
	m, err := checkBackup(ctx, partial)
	if err != nil {
		return nil, fmt.Errorf("the backup received does not restore (the server's log says why, if it failed there): %w", err)
	}
	if err := os.Rename(partial, dest); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// checkBackup restores the archive into a scratch directory and removes it.
func checkBackup(ctx context.Context, path string) (*server.BackupManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	scratch, err := os.MkdirTemp(filepath.Dir(path), ".signet-backup-check-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	res, err := server.Restore(ctx, f, filepath.Join(scratch, "data"), server.RestoreOptions{})
	if err != nil {
		return nil, err
	}
	return res.Manifest, nil
}

func newServerRestoreCmd() *cobra.Command {
	var (
		from, data, configPath string
		newer                  []string
		out                    outputFormat
	)
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into a new data directory, checked before it is put in place",
		Long: `Restore a backup taken by 'signet server backup' into a new (or empty) data
directory. The archive is written beside --data and checked there: every
file against the manifest's SHA-256, each log with the checks of 'signet
server fsck' (against the keys in the backup or named by --config, else
against the log keys the manifest records), and the attestation database
page by page. Only then is it renamed to --data; on any failure nothing is
left behind and --data is as it was.

A restored server continues each log from the tree in the backup. If the
original server signed larger trees after the backup (it kept serving),
the restored one would sign different entries at those sizes under the
same key: a fork. Give each newer checkpoint you have with --checkpoint
(the old data directory's signed-head, a witness's or a monitor's latest):
restore refuses a backup older than any of them. docs/operations.md says
when a restored server may take over.`,
		Example: `  signet server restore --from /backups/signet.tar --data /var/lib/signet-restored
  signet server restore --from signet.tar --data /var/lib/signet --config /etc/signet/server.yaml \
    --checkpoint /mnt/old/signed-head`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if from == "" || data == "" {
				return usageError{errors.New("--from FILE (the backup) and --data DIR (a new or empty directory) are both required")}
			}
			var opts server.RestoreOptions
			if configPath != "" {
				cfg, err := server.LoadConfig(configPath)
				if err != nil {
					return err
				}
				opts.Config = &cfg
			}
			for _, p := range newer {
				raw, err := os.ReadFile(p)
				if err != nil {
					return usageError{fmt.Errorf("--checkpoint %s: %w", p, err)}
				}
				opts.Newer = append(opts.Newer, raw)
			}
			f, err := os.Open(from)
			if err != nil {
				return fmt.Errorf("--from %s: %w; give the archive 'signet server backup' wrote", from, errors.Unwrap(err))
			}
			defer f.Close()
			klog.SetOutput(io.Discard)
			klog.LogToStderr(false)
			rr, err := server.Restore(cmd.Context(), f, data, opts)
			if err != nil {
				return err
			}
			res := newBackupResult(rr.Manifest)
			res.Dir = rr.Dir
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "restored and checked: %s (backup of %s)\n", rr.Dir, rr.Manifest.Created.Format(time.RFC3339))
			res.print(w)
			if rr.Fsck == nil {
				fmt.Fprintln(w, "The logs were checked against the log keys the backup records; to check them against the keys the server will use, give its --config.")
			}
			if !rr.Manifest.Keys {
				fmt.Fprintf(w, "The backup holds no private keys: before starting a server on %s, put the original keys/ into it (or configure the keys: block), or the server refuses to start.\n", rr.Dir)
			}
			fmt.Fprintln(w, "Start it only where the original server is stopped for good: see docs/operations.md, \"Backup and restore\".")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the backup archive (from 'signet server backup')")
	f.StringVar(&data, "data", "", "data directory to restore into: must not exist or be empty")
	f.StringVar(&configPath, "config", "", "the config the restored server will run with (its keys and log.origin are checked against the backup)")
	f.StringArrayVar(&newer, "checkpoint", nil, "a checkpoint of the log seen since the backup (the old signed-head, a witness's); refuse to restore a backup older than it (repeatable)")
	out.add(f)
	return cmd
}
