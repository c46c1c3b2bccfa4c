package s3test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/signet-dev/signet/internal/testproc"
)

func put(ctx context.Context, c *s3.Client, bucket, key, body string, ifNoneMatch bool) error {
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := c.PutObject(ctx, in)
	return err
}

func get(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

func mustGet(t *testing.T, ctx context.Context, c *s3.Client, bucket, key, want string) {
	t.Helper()
	got, err := get(ctx, c, bucket, key)
	if err != nil {
		t.Fatalf("getting %s/%s: %v", bucket, key, err)
	}
	if got != want {
		t.Fatalf("%s/%s = %q, want %q", bucket, key, got, want)
	}
}

// errorCode is the S3 error code of err ("" if it is not an S3 error).
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// An object put before a kill -9 (or a stop) is there after the restart,
// on the same endpoint; a conditional put does not replace an existing
// object; a second server of the same test binary is its own.
func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	s := Start(t)
	t.Logf("first Start (building versitygw if the tools cache lacks it): %v", time.Since(start))
	if want := fmt.Sprintf("http://127.0.0.1:%d", s.Port); s.Endpoint() != want {
		t.Fatalf("Endpoint() = %q, want %q", s.Endpoint(), want)
	}
	s.CreateBucket(t, "tiles")
	c := s.Client()

	if err := put(ctx, c, "tiles", "tile/0/000", "tile zero", false); err != nil {
		t.Fatal(err)
	}
	mustGet(t, ctx, c, "tiles", "tile/0/000", "tile zero")
	// The POSIX backend keeps the object as a file under the test's directory.
	if b, err := os.ReadFile(filepath.Join(s.Data, "tiles", "tile/0/000")); err != nil || string(b) != "tile zero" {
		t.Fatalf("the object's file in %s: %q, %v", s.Data, b, err)
	}

	// If-None-Match: * (what tessera's aws driver writes tiles and
	// bundles with) is refused for an existing key and leaves it alone,
	// and accepted for a new one.
	err := put(ctx, c, "tiles", "tile/0/000", "another tile", true)
	if code := errorCode(err); code != "PreconditionFailed" {
		t.Fatalf("conditional put over an existing object: err = %v (code %q), want PreconditionFailed", err, code)
	}
	mustGet(t, ctx, c, "tiles", "tile/0/000", "tile zero")
	if err := put(ctx, c, "tiles", "tile/0/001", "tile one", true); err != nil {
		t.Fatalf("conditional put of a new key: %v", err)
	}
	mustGet(t, ctx, c, "tiles", "tile/0/001", "tile one")

	endpoint := s.Endpoint()
	for _, down := range []struct {
		name string
		stop func()
	}{{"kill -9", s.Kill}, {"stop", s.Stop}} {
		down.stop()
		if _, err := get(ctx, c, "tiles", "tile/0/000"); err == nil {
			t.Fatalf("the server still answers after %s", down.name)
		}
		if err := put(ctx, c, "tiles", "tile/0/002", "lost", false); err == nil {
			t.Fatalf("a put succeeded after %s", down.name)
		}
		start = time.Now()
		s.Restart(t)
		t.Logf("Restart after %s: %v", down.name, time.Since(start))
		if s.Endpoint() != endpoint {
			t.Fatalf("restarted on %s, want the same endpoint %s", s.Endpoint(), endpoint)
		}
		mustGet(t, ctx, c, "tiles", "tile/0/000", "tile zero")
		mustGet(t, ctx, c, "tiles", "tile/0/001", "tile one")
		// The object lock survives too: still no overwrite.
		if code := errorCode(put(ctx, c, "tiles", "tile/0/001", "other", true)); code != "PreconditionFailed" {
			t.Fatalf("conditional put after %s: code %q, want PreconditionFailed", down.name, code)
		}
	}

	// The second server has neither the first one's endpoint, directory,
	// credentials nor buckets.
	start = time.Now()
	s2 := Start(t)
	t.Logf("second Start: %v", time.Since(start))
	a1, k1 := s.Credentials()
	a2, k2 := s2.Credentials()
	if s2.Endpoint() == s.Endpoint() || s2.Dir == s.Dir || a1 == a2 || k1 == k2 {
		t.Fatalf("second server shares the first's endpoint, directory or credentials: %+v / %+v", s2, s)
	}
	out, err := s2.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Buckets) != 0 {
		t.Fatalf("the second server has buckets: %v", aws.ToString(out.Buckets[0].Name))
	}
	// The first server's credentials are not the second's.
	o := s2.options()
	o.Credentials = credentials.NewStaticCredentialsProvider(a1, k1, "")
	if _, err := s3.New(o).ListBuckets(ctx, &s3.ListBucketsInput{}); errorCode(err) != "InvalidAccessKeyId" {
		t.Fatalf("the first server's credentials on the second: err = %v, want InvalidAccessKeyId", err)
	}
	mustGet(t, ctx, c, "tiles", "tile/0/000", "tile zero")
}

// Requests signed with anything but the server's credentials and region
// are refused, as AWS refuses them.
func TestServerRefusesWrongCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := Start(t)
	s.CreateBucket(t, "b-1")
	access, secret := s.Credentials()
	for _, tc := range []struct {
		name, access, secret, region, code string
	}{
		{"wrong secret", access, "not-" + secret, Region, "SignatureDoesNotMatch"},
		{"unknown access key", "AKIANOTSIGNETS3TEST1", secret, Region, "InvalidAccessKeyId"},
		{"wrong region", access, secret, "us-east-1", "AuthorizationHeaderMalformed"},
	} {
		o := s.options()
		o.Credentials = credentials.NewStaticCredentialsProvider(tc.access, tc.secret, "")
		o.Region = tc.region
		err := put(ctx, s3.New(o), "b-1", "k", "v", false)
		if code := errorCode(err); code != tc.code {
			t.Errorf("%s: err = %v (code %q), want %s", tc.name, err, code, tc.code)
		}
	}
	o := s.options()
	o.Credentials = aws.AnonymousCredentials{}
	if code := errorCode(put(ctx, s3.New(o), "b-1", "k", "v", false)); code != "AccessDenied" {
		t.Errorf("anonymous put: code %q, want AccessDenied", code)
	}
	if _, err := get(ctx, s.Client(), "b-1", "k"); errorCode(err) != "NoSuchKey" {
		t.Fatalf("a refused put stored the object: err = %v", err)
	}
}

// Env is what the AWS SDK's default configuration reads: a client built
// from it alone (plus path-style addressing) reaches the server.
func TestEnvConfiguresTheSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := Start(t)
	s.CreateBucket(t, "from-env")
	// Nothing of the machine's own AWS configuration may take part.
	none := filepath.Join(t.TempDir(), "none")
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if err := put(ctx, c, "from-env", "k", "configured by Env", false); err != nil {
		t.Fatalf("put with the SDK configured by Env %v: %v", s.Env(), err)
	}
	mustGet(t, ctx, s.Client(), "from-env", "k", "configured by Env")
}

// A start that fails says why, with the end of versitygw's log.
func TestRestartFailureShowsTheLog(t *testing.T) {
	s := Start(t)
	s.Kill()
	// Another process on the port: the restart cannot bind it.
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msg := testproc.FatalMessage(t, func(ft testing.TB) { s.Restart(ft) })
	if !strings.Contains(msg, "restarting versitygw on "+s.Addr) || !strings.Contains(msg, "address already in use") ||
		!strings.Contains(msg, s.Log) {
		t.Fatalf("failed restart's message lacks the address or versitygw's log:\n%s", msg)
	}
}

// CreateBucket refuses a name S3 would refuse, before it connects.
func TestCreateBucketRefusesOddNames(t *testing.T) {
	s := &Server{}
	for _, name := range []string{"", "ab", "Tiles", "a_b", "-ab", "ab-", "a..b", strings.Repeat("n", 64)} {
		msg := testproc.FatalMessage(t, func(ft testing.TB) { s.CreateBucket(ft, name) })
		if !strings.Contains(msg, "use 3 to 63 lowercase letters, digits, dots and hyphens") {
			t.Errorf("CreateBucket(%q): message = %q", name, msg)
		}
	}
}
