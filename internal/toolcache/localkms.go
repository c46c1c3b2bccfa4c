package toolcache

// LocalKMS is nsmithuk/local-kms, an AWS KMS emulator (asymmetric ECC and
// RSA SIGN_VERIFY keys, aliases) that internal/kmstest runs for the
// awskms:// tests. The module has no tagged release; this is its newest
// commit the proxy serves (2026-02-28). Its own command listens on every
// interface over plain HTTP, and sigstore/sigstore's awskms provider
// speaks only HTTPS, so the build wraps its request handler in
// LocalKMSMain instead.
var LocalKMS = Tool{
	Name: "local-kms", Package: "github.com/nsmithuk/local-kms/src",
	Version: "v0.0.0-20260228092603-2a5e92d09ab6",
	Module:  "github.com/nsmithuk/local-kms",
	Main:    LocalKMSMain,
}

// LocalKMSMain serves local-kms's handler over TLS on one loopback address
// and writes the address it bound to a file once it accepts connections.
const LocalKMSMain = `// Command local-kms serves github.com/nsmithuk/local-kms's AWS KMS
// emulator over TLS on a loopback address, for signet's tests.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	lkms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	dir := flag.String("data", "", "directory of the key database (required)")
	cert := flag.String("tls-cert", "", "PEM certificate chain (required)")
	key := flag.String("tls-key", "", "PEM private key (required)")
	addrFile := flag.String("addr-file", "", "file to write the bound address to once listening")
	account := flag.String("account", "111122223333", "AWS account ID of the keys' ARNs")
	region := flag.String("region", "eu-west-2", "AWS region of the keys' ARNs")
	flag.Parse()
	if *dir == "" || *cert == "" || *key == "" {
		log.Fatal("local-kms: -data, -tls-cert and -tls-key are required")
	}
	config.AWSAccountId, config.AWSRegion, config.DatabasePath = *account, *region, *dir
	db := data.NewDatabase(*dir)
	defer db.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("local-kms: %v", err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Fatalf("local-kms: %s is not a loopback address", ln.Addr())
	}
	if *addrFile != "" {
		// Renamed into place, so a reader never sees half an address.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatalf("local-kms: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("local-kms: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "local-kms: serving on https://%s\n", ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lkms.HandleRequest(w, r, db)
	})}
	log.Fatal(srv.ServeTLS(ln, *cert, *key))
}
`
