package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/server/pki"
)

const keyRefHelp = `Keys are named as --key is everywhere in signet: a PEM file path, a
PKCS#11 URI (pkcs11:token=LABEL;object=KEY?module-path=/usr/lib/…/module.so&pin-source=/run/pin,
RFC 7512; the module and PIN may come from $SIGNET_PKCS11_MODULE and
$SIGNET_PKCS11_PIN instead), or a KMS URI (awskms://, gcpkms://,
azurekms://, hashivault://, with the provider's usual credentials).`

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make the server's CA certificates with an offline root",
		Long: `Make the certificates of the server's CA and TSA keys with a root key that
stays offline: the server runs with only the issuing (intermediate) key,
and the root signs on an operator's machine or hardware token.

  signet ca init                 a new root and, under it, the CA's (and TSA's) certificate
  signet ca csr                  a certificate request for a server key (to run under an
                                 existing PKI, or to rotate the intermediate)
  signet ca issue-intermediate   sign such a request with the root (or any CA key)

` + keyRefHelp + `

docs/operations.md walks through each, and through rotating the intermediate.`,
	}
	cmd.AddCommand(newCAInitCmd(), newCACSRCmd(), newCAIssueCmd())
	return cmd
}

func newCAInitCmd() *cobra.Command {
	var (
		o             pki.InitOptions
		rootYears, ys int
		out           outputFormat
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a root CA and the server's issuing certificate under it",
		Long: `Create a root certificate and, signed by it, the issuing (intermediate)
certificate of the server's CA key, and with --tsa-key the timestamping
certificate of its TSA key. Keys that do not exist are made: a new PEM file
(mode 0600), or a key generated inside the PKCS#11 token or AWS KMS
(never extractable; awskms://…/alias/NAME); other KMS keys must exist. Writes to --out: ca-root.pem,
ca-chain.pem (intermediate, root) and tsa-chain.pem, which the server's
keys.caChain and keys.tsaChain name; it refuses to overwrite them.

Run it where the root key lives, then keep the root key offline: the
server needs only --key, --tsa-key and the chain files.

` + keyRefHelp,
		Example: `  # root in a token on the operator's machine, server keys in the server's HSM
  signet ca init --out ca/ \
    --root-key 'pkcs11:token=offline-root;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so' \
    --key 'pkcs11:token=signet;object=ca?module-path=/usr/lib/softhsm/libsofthsm2.so' \
    --tsa-key 'pkcs11:token=signet;object=tsa?module-path=/usr/lib/softhsm/libsofthsm2.so'
  # files, for a test setup (move ca/root.key offline afterwards)
  signet ca init --out ca/ --organization "Example Corp"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if o.Out == "" {
				return usageError{fmt.Errorf("--out is required: the directory for the certificates")}
			}
			o.RootValidity = time.Duration(rootYears) * 365 * 24 * time.Hour
			o.Validity = time.Duration(ys) * 365 * 24 * time.Hour
			r, err := pki.InitCA(cmd.Context(), o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out.json() {
				return writeJSON(w, r)
			}
			for _, g := range r.Generated {
				fmt.Fprintf(w, "generated key %s\n", g)
			}
			fmt.Fprintf(w, "root certificate: %s (pin it in clients through trusted_root.json; the server serves it)\n", r.RootCert)
			fmt.Fprintf(w, "CA chain: %s (valid until %s)\n", r.CAChain, r.NotAfter)
			fmt.Fprintf(w, "\nIn the server's config:\n  keys:\n    caKey: %q\n    caChain: %s\n", r.CAKey, r.CAChain)
			if r.TSAChain != "" {
				fmt.Fprintf(w, "    tsaKey: %q\n    tsaChain: %s\n", r.TSAKey, r.TSAChain)
			}
			fmt.Fprintf(w, "\nKeep %s offline: the server never needs it.\n", r.RootKey)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "directory for the certificates and any new key files (required)")
	f.StringVar(&o.RootKey, "root-key", "", "the root's key (default <out>/root.key, made if missing)")
	f.StringVar(&o.Key, "key", "", "the server's CA issuing key (default <out>/ca.key, made if missing)")
	f.StringVar(&o.TSAKey, "tsa-key", "", "the server's TSA key: also issue its timestamping certificate")
	f.StringVar(&o.Organization, "organization", "signet", "organization in the certificates' subjects")
	f.IntVar(&rootYears, "root-years", 10, "validity of the root certificate, in years")
	f.IntVar(&ys, "years", 5, "validity of the issuing and timestamping certificates, in years (cut to the root's)")
	out.add(f)
	return cmd
}

func newCACSRCmd() *cobra.Command {
	var (
		key, algorithm, org, cn, outFile string
	)
	cmd := &cobra.Command{
		Use:   "csr",
		Short: "Write a certificate request for a server key",
		Long: `Write a PEM certificate request (PKCS#10) for a key of the server, for an
offline root (signet ca issue-intermediate) or an organisation's CA to
sign. With --generate, a key that does not exist is made first (in the
token, in AWS KMS under the URI's alias, or as a new file).

` + keyRefHelp,
		Example: `  signet ca csr --key 'pkcs11:token=signet;object=ca-2027' --generate ecdsa-p256 \
    --common-name "signet intermediate CA 2027" --out ca-2027.csr`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" || outFile == "" {
				return usageError{fmt.Errorf("--key and --out are required")}
			}
			k, created, err := pki.OpenKey(cmd.Context(), key, keyref.Algorithm(algorithm))
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.ErrOrStderr(), "generated key %s\n", keyref.Redact(key))
			}
			b, err := pki.CSR(k, pkix.Name{Organization: []string{org}, CommonName: cn})
			if err != nil {
				return err
			}
			return os.WriteFile(outFile, b, 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "the key to request a certificate for (required)")
	f.StringVar(&algorithm, "generate", "", "make the key if it does not exist: ecdsa-p256 or ed25519")
	f.StringVar(&org, "organization", "signet", "organization of the subject")
	f.StringVar(&cn, "common-name", "signet intermediate CA", "common name of the subject")
	f.StringVar(&outFile, "out", "", "file to write the PEM request to (required)")
	return cmd
}

func newCAIssueCmd() *cobra.Command {
	var (
		o         pki.IssueOptions
		csr, dest string
		tsa       bool
		years     int
	)
	cmd := &cobra.Command{
		Use:   "issue-intermediate",
		Short: "Sign a server's certificate request with the root (or another CA key)",
		Long: `Sign a certificate request (signet ca csr) with the issuer's key and write the
chain the server's keys.caChain (or, with --tsa, keys.tsaChain) names: the
new certificate first, then --issuer-chain. The request's subject is kept;
its signature must verify (the requester holds the key). The issuer may be
signet's own root or a CA of an existing PKI (a subordinate of another
Sigstore root works the same way).

` + keyRefHelp,
		Example: `  signet ca issue-intermediate --issuer-key /media/offline/root.key \
    --issuer-chain ca/ca-root.pem --csr ca-2027.csr --out ca-2027-chain.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.IssuerKey == "" || o.IssuerChain == "" || csr == "" || dest == "" {
				return usageError{fmt.Errorf("--issuer-key, --issuer-chain, --csr and --out are required")}
			}
			var err error
			if o.CSR, err = os.ReadFile(csr); err != nil {
				return err
			}
			if tsa {
				o.Kind = pki.Timestamping
			}
			o.Validity = time.Duration(years) * 365 * 24 * time.Hour
			chain, cert, err := pki.IssueFromCSR(cmd.Context(), o)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("%w (the chain is written to a new file only)", err)
			}
			if _, err := f.Write(chain); err != nil {
				f.Close()
				os.Remove(dest)
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s certificate %q, serial %x, valid %s to %s: %s\n", o.Kind, cert.Subject, cert.SerialNumber,
				cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), dest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.IssuerKey, "issuer-key", "", "the issuing key: the root's, or another CA's (required)")
	f.StringVar(&o.IssuerChain, "issuer-chain", "", "PEM file: the issuer's certificate first, up to its root (required)")
	f.StringVar(&csr, "csr", "", "the PEM certificate request (required)")
	f.StringVar(&dest, "out", "", "file to write the chain to; must not exist (required)")
	f.BoolVar(&tsa, "tsa", false, "issue a timestamping certificate (for keys.tsaChain), not a CA")
	f.IntVar(&years, "years", 5, "validity in years (cut to the issuer's)")
	return cmd
}

// publicKeyPEM is a key's public half as a PEM PUBLIC KEY block.
func publicKeyPEM(pub any) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func newServerKeygenCmd() *cobra.Command {
	var key, algorithm string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make a server key in a PKCS#11 token, AWS KMS or a file and print its public key",
		Long: `Make a signing key for the server: the log's checkpoint key (ed25519), the
CT log's key (ecdsa-p256), a TUF online key, or a CA or TSA key before
signet ca csr. In a PKCS#11 token the private key is generated inside the
token and cannot be extracted; in AWS KMS it is made under the URI's alias
(awskms://[HOST:PORT]/alias/NAME, ecdsa-p256 only). An existing key is refused, not replaced.
Prints the public key (PEM).

` + keyRefHelp,
		Example: `  signet server keygen --algorithm ed25519 \
    --key 'pkcs11:token=signet;object=log?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/secrets/pin'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				return usageError{fmt.Errorf("--key is required")}
			}
			alg := keyref.Algorithm(algorithm)
			if alg != keyref.ECDSAP256 && alg != keyref.Ed25519 {
				return usageError{fmt.Errorf("--algorithm %q: use ecdsa-p256 or ed25519", algorithm)}
			}
			k, created, err := pki.OpenKey(cmd.Context(), key, alg)
			if err != nil {
				return err
			}
			if !created {
				return fmt.Errorf("%s already exists; signet does not replace keys (name a new one)", keyref.Redact(key))
			}
			b, err := publicKeyPEM(k.Public())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the key to make (required)")
	cmd.Flags().StringVar(&algorithm, "algorithm", "ecdsa-p256", "ecdsa-p256 or ed25519 (the log's checkpoint key)")
	return cmd
}
