// Package s3test gives tests a real S3-compatible object store:
// versitygw (toolcache.Versitygw, built from the Go module proxy) with its
// POSIX backend, one fresh server per Start, listening on 127.0.0.1 with
// its buckets in the test's temporary directory.
//
// Clients sign their requests (SigV4) with the server's root access key and
// secret, generated per Start, in the server's region, as they would against
// AWS. They must use path-style addressing (http://127.0.0.1:PORT/bucket/key):
// loopback has no DNS for virtual-host buckets (bucket.127.0.0.1).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/signet-dev/signet/internal/testproc"
	"github.com/signet-dev/signet/internal/toolcache"
)

// Region is the region every Server serves. It is not versitygw's default
// (us-east-1), so a client that forgets to set the region fails its
// signature check instead of passing by chance.
const Region = "eu-central-1"

// startTimeout bounds one start of versitygw until it answers a signed
// request; a start takes well under a second, on a loaded 2-core machine a
// few seconds.
const startTimeout = 60 * time.Second

// A Server is a running versitygw of the test's own.
type Server struct {
	Addr string // 127.0.0.1:port, the same across Restart
	Port int
	Dir  string // holds data/, iam/ and versitygw.log
	Data string // the POSIX backend's root: one directory per bucket
	Log  string // versitygw's output

	accessKey, secret string
	bin               string
	proc              *testproc.Process
}

// Start starts versitygw on a free loopback port with an empty POSIX
// backend directory in t.TempDir() and returns once it answers a signed S3
// request. The server is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := toolcache.Versitygw.Binary()
	if err != nil {
		t.Fatalf("versitygw from the Go module proxy: %v", err)
	}
	s := &Server{Dir: t.TempDir(), bin: bin}
	s.Data = filepath.Join(s.Dir, "data")
	s.Log = filepath.Join(s.Dir, "versitygw.log")
	s.proc = &testproc.Process{Name: "versitygw", Log: s.Log}
	for _, d := range []string{s.Data, filepath.Join(s.Dir, "iam")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// AWS's shapes: a 20-character access key ID, a 40-character secret.
	s.accessKey = "SIGNET" + strings.ToUpper(randomHex(7))
	s.secret = randomHex(20)
	t.Cleanup(s.Kill)
	testproc.OnFreePort(t, s.proc, "versitygw", func(port int) error {
		s.Port, s.Addr = port, "127.0.0.1:"+strconv.Itoa(port)
		return s.start()
	})
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Endpoint is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return "http://" + s.Addr }

// Credentials are the root account's access key ID and secret access key,
// which may do everything (create buckets, put, get, delete).
func (s *Server) Credentials() (accessKey, secret string) { return s.accessKey, s.secret }

// Region is the region clients must sign their requests for.
func (s *Server) Region() string { return Region }

// Env is the environment that points an AWS SDK v2 client (config.
// LoadDefaultConfig) at the server: the credentials, the region and the
// S3 endpoint (AWS_ENDPOINT_URL_S3, which the SDK honours for S3 only).
// Append it to an environment without other AWS_ variables (a session
// token or a profile would be used too). The SDK has no variable for
// path-style addressing: the client still needs UsePathStyle (s3.Options).
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.accessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.secret,
		"AWS_REGION=" + Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint(),
	}
}

// Client is an S3 client for the server as root, with path-style
// addressing. It does not retry: a test that kills the server sees the
// failure at once.
func (s *Server) Client() *s3.Client {
	return s3.New(s.options())
}

func (s *Server) options() s3.Options {
	return s3.Options{
		BaseEndpoint: aws.String(s.Endpoint()),
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.accessKey, s.secret, ""),
		UsePathStyle: true,
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	}
}

// bucketName is S3's rule for a bucket name: 3 to 63 lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// CreateBucket creates bucket name and fails the test if it cannot.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if !bucketName.MatchString(name) || strings.Contains(name, "..") {
		t.Fatalf("s3test: bucket name %q: use 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s on %s: %v\n%s", name, s.Addr, err, s.proc.LogTail())
	}
}

// Kill kills versitygw with SIGKILL, as a crash or a lost machine would,
// and waits until it has exited; the buckets' directory stays for
// Restart. Killing a stopped server does nothing.
func (s *Server) Kill() { s.proc.Stop(syscall.SIGKILL) }

// Stop shuts versitygw down with SIGTERM, as a service manager would, and
// waits until it has exited (SIGKILL after 10 s); the buckets' directory
// stays for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.proc.Stop(syscall.SIGTERM) }

// Restart kills versitygw (if it runs) and starts it again on the same
// directory, port and credentials, returning once it answers a signed
// request: what it had stored is there again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		t.Fatalf("restarting versitygw on %s: %v\n%s", s.Addr, err, s.proc.LogTail())
	}
}

// start runs versitygw on s.Data and s.Port and waits until it answers a
// signed ListBuckets, or exits, or startTimeout passes.
func (s *Server) start() error {
	// --iam-dir: with its single-account IAM, versitygw answers an unknown
	// access key with its own XAdminUserNotFound (404) instead of S3's
	// InvalidAccessKeyId (403); its file-based IAM answers as AWS does.
	cmd := exec.Command(s.bin, "--port", s.Addr, "--region", Region, "--iam-dir", filepath.Join(s.Dir, "iam"), "posix", s.Data)
	// Only what versitygw needs: the test's own VGW_*, ROOT_*, ADMIN_*
	// and LOGFILE variables would reconfigure it. The root credentials go
	// through the environment, not the command line, which ps shows.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.Dir,
		"ROOT_ACCESS_KEY_ID=" + s.accessKey,
		"ROOT_SECRET_ACCESS_KEY=" + s.secret,
	}
	cmd.Dir = s.Dir
	client := s.Client()
	err := s.proc.Run(cmd, startTimeout, "answer a signed ListBuckets on "+s.Addr, func(ctx context.Context) error {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	})
	if err != nil {
		return fmt.Errorf("%w%s", err, s.hint())
	}
	return nil
}

// hint says what to do about a failure the log explains.
func (s *Server) hint() string {
	b, _ := os.ReadFile(s.Log)
	if strings.Contains(string(b), "xattr check failed") {
		return ": the POSIX backend keeps object metadata in user extended attributes, which the filesystem of " +
			s.Data + " does not support; point TMPDIR at a directory on ext4, xfs or btrfs"
	}
	return ""
}
