package server

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/go-sql-driver/mysql"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-dev/signet/server/identity"
	"github.com/signet-dev/signet/server/ratelimit"
	"github.com/signet-dev/signet/server/storage"
)

// Config is the whole server configuration. Zero values mean the embedded
// default; flags override the file.
type Config struct {
	// Addr is the listen address (host:port).
	Addr string `yaml:"addr"`
	// URL is the public base URL clients use, written into the trust files and
	// the development issuer's URL. Default: derived from the listener.
	URL string `yaml:"url"`
	// Data is the data directory.
	Data string `yaml:"data"`
	// Operator names who runs this instance in the trust files.
	Operator string `yaml:"operator"`
	// AdminAddr is a separate listen address for /metrics, /healthz,
	// /readyz and /debug/pprof/; set, the public listener serves no
	// /metrics. Empty: metrics on the public listener, no profiling.
	AdminAddr string `yaml:"adminAddr"`

	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`

	// DevOIDC turns on the development OIDC issuer (quickstarts and tests only).
	DevOIDC bool `yaml:"devOIDC"`

	// OIDCIssuers are the identity providers whose tokens the CA accepts.
	OIDCIssuers []identity.IssuerConfig `yaml:"oidcIssuers"`

	// Keys supplied by the operator instead of generated ones.
	Keys storage.KeyFiles `yaml:"keys"`

	CA struct {
		// Validity of issued certificates.
		Validity time.Duration `yaml:"validity"`
		// MaxTokenLifetime is the longest identity token lifetime (exp -
		// iat) accepted; default identity.DefaultMaxTokenLifetime.
		MaxTokenLifetime time.Duration `yaml:"maxTokenLifetime"`
		// MaxRequestBytes bounds a signing-certificate request body;
		// default ca.DefaultMaxRequestBytes.
		MaxRequestBytes int64 `yaml:"maxRequestBytes"`
	} `yaml:"ca"`

	Log struct {
		// Origin is the checkpoint origin line and key name: a host name.
		// Default: the URL's host name without port. Sigstore verifiers
		// derive it from the host of the log's baseUrl in trusted_root.json,
		// so when it differs from the URL's host, the trust files name the
		// log at the URL with this host (see logOrigin).
		Origin             string        `yaml:"origin"`
		CheckpointInterval time.Duration `yaml:"checkpointInterval"`
		BatchMaxAge        time.Duration `yaml:"batchMaxAge"`
		BatchMaxSize       uint          `yaml:"batchMaxSize"`
		MaxRequestBytes    int64         `yaml:"maxRequestBytes"`
		// WitnessPolicy is a file naming the witnesses (C2SP tlog-witness)
		// that must cosign every checkpoint before it is published, and how
		// many of them (tessera's policy format: witness, group, quorum
		// lines). Unset: checkpoints are published with the log's
		// signature only.
		WitnessPolicy string `yaml:"witnessPolicy"`
		// WitnessTimeout bounds one round of asking the witnesses.
		WitnessTimeout time.Duration `yaml:"witnessTimeout"`
	} `yaml:"log"`

	// CT is the certificate transparency log the CA logs every
	// certificate in (RFC 6962, static-ct-api), on by default.
	CT struct {
		// Disabled issues certificates without SCTs; verifiers must then
		// be told not to require one (cosign --insecure-ignore-sct).
		Disabled           bool          `yaml:"disabled"`
		BatchMaxAge        time.Duration `yaml:"batchMaxAge"`
		CheckpointInterval time.Duration `yaml:"checkpointInterval"`
	} `yaml:"ct"`

	TSA struct {
		// LogTimestamps records every timestamp the TSA issues in the
		// transparency log and hands the entry back inside the token
		// (time transparency, core/timelog). Default true.
		LogTimestamps *bool `yaml:"logTimestamps"`
		// MaxRequestBytes bounds a timestamp request body; default
		// tsa.DefaultMaxRequestBytes.
		MaxRequestBytes int64 `yaml:"maxRequestBytes"`
	} `yaml:"tsa"`

	// TUF is the TUF repository served under /tuf/. Unset: the
	// zero-config repository, whose one key (keys/tuf.key) signs every role.
	TUF struct {
		// Dir holds a repository published by a key ceremony ('signet tuf
		// publish --to DIR'): root and targets signed offline, verified at
		// start; the server signs only snapshot and timestamp there.
		Dir string `yaml:"dir"`
		// OnlineKey is the key file (Ed25519 or ECDSA P-256 PEM) that signs
		// snapshot and timestamp: the published root must name it for both.
		OnlineKey string `yaml:"onlineKey"`
		// Key is the zero-config repository's one key as a reference (a
		// file, a PKCS#11 or KMS URI) instead of keys/tuf.key in the data
		// directory. Without tuf.dir only.
		Key string `yaml:"key"`
	} `yaml:"tuf"`

	Attestations struct {
		MaxEnvelopeBytes int64 `yaml:"maxEnvelopeBytes"`
		// MaxInflightBytes bounds submission bodies read at once; default
		// twice MaxEnvelopeBytes.
		MaxInflightBytes int64 `yaml:"maxInflightBytes"`
	} `yaml:"attestations"`

	HTTP struct {
		// ReadTimeout bounds reading one whole request, headers and body:
		// a client that trickles a body cannot hold a connection longer.
		ReadTimeout time.Duration `yaml:"readTimeout"`
		// ReadHeaderTimeout bounds reading a request's headers, so a
		// client that sends them slowly gives its connection up sooner.
		ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
		// IdleTimeout closes a kept-alive connection with no request.
		IdleTimeout time.Duration `yaml:"idleTimeout"`
		// MaxConnections bounds the client connections served at once;
		// further ones wait in the listen backlog.
		MaxConnections int `yaml:"maxConnections"`
	} `yaml:"http"`
	// Limits keep one client from taking a service's capacity: request
	// rates per client address and per identity, answered 429 with
	// Retry-After when exceeded. Zero rates (the default) limit nothing.
	Limits struct {
		// TrustedProxies are the addresses (CIDRs) of load balancers whose
		// X-Forwarded-For names the client; requests from elsewhere are
		// keyed by their TCP peer.
		TrustedProxies []string `yaml:"trustedProxies"`
		Certificates   struct {
			PerIP       ratelimit.Rule `yaml:"perIP"`
			PerIdentity ratelimit.Rule `yaml:"perIdentity"`
		} `yaml:"certificates"`
		LogEntries struct {
			PerIP       ratelimit.Rule `yaml:"perIP"`
			PerIdentity ratelimit.Rule `yaml:"perIdentity"`
		} `yaml:"logEntries"`
	} `yaml:"limits"`
	// ShutdownTimeout bounds graceful shutdown on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`

	// Storage says where the log and the attestation store live: the data
	// directory (embedded, the default), or a MySQL-compatible database
	// and an S3-compatible object store shared by any number of servers
	// (distributed; docs/scale-out.md).
	Storage StorageConfig `yaml:"storage"`
}

// StorageConfig is the storage section of the configuration.
type StorageConfig struct {
	// Driver is "embedded" (or empty) or "distributed".
	Driver   string         `yaml:"driver"`
	Database DatabaseConfig `yaml:"database"`
	// CTDatabase is the certificate transparency log's database, needed
	// unless ct.disabled: tessera's tables have fixed names, so the CT log
	// cannot share the transparency log's. Its objects are under
	// Objects.Prefix + "ctlog/".
	CTDatabase DatabaseConfig `yaml:"ctDatabase"`
	// IntegrationLoops is how many of tessera's integration loops each
	// server runs (0: 4); see docs/scale-out.md.
	IntegrationLoops int `yaml:"integrationLoops"`
	Objects          struct {
		// Bucket and Prefix: the log's tiles, entry bundles and checkpoint
		// are at s3://Bucket/Prefix<tlog-tiles path>.
		Bucket string `yaml:"bucket"`
		Prefix string `yaml:"prefix"`
		// Endpoint is the object store's URL, for stores other than AWS
		// S3; unset: the AWS SDK's (AWS_ENDPOINT_URL_S3, or AWS).
		Endpoint string `yaml:"endpoint"`
		// PathStyle addresses buckets in the URL path, as most stores
		// other than AWS S3 need.
		PathStyle bool `yaml:"pathStyle"`
	} `yaml:"objects"`
}

// DatabaseConfig names a MySQL-compatible database.
type DatabaseConfig struct {
	// DSN is the go-sql-driver/mysql data source name of the database
	// (user:password@tcp(host:3306)/database); DSNFile a file holding
	// it, so the password need not be in the config.
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsnFile"`
}

func (d DatabaseConfig) set() bool { return d.DSN != "" || d.DSNFile != "" }

// sameDatabase reports whether two DSNs name one database (and so
// tessera's tables of two logs would collide).
func sameDatabase(a, b string) bool {
	da, errA := mysql.ParseDSN(a)
	db, errB := mysql.ParseDSN(b)
	return a != "" && b != "" && errA == nil && errB == nil && da.Addr == db.Addr && da.DBName == db.DBName
}

func sameDatabaseMessage(dsn string) string {
	d, _ := mysql.ParseDSN(dsn)
	return fmt.Sprintf("storage.ctDatabase names the same database (%s on %s) as storage.database; the CT log needs one of its own, as tessera's tables have fixed names", d.DBName, d.Addr)
}

// maxIntegrationLoops bounds storage.integrationLoops: each loop holds
// database connections and polls the database every second.
const maxIntegrationLoops = 16

// Storage drivers.
const (
	StorageEmbedded    = "embedded"
	StorageDistributed = "distributed"
)

// Distributed reports whether the storage is shared by several servers.
func (c *StorageConfig) Distributed() bool { return c.Driver == StorageDistributed }

// DatabaseDSN is the log's database DSN, read from DSNFile if that is set.
func (c *StorageConfig) DatabaseDSN() (string, error) { return c.Database.dsn("storage.database") }

// CTDatabaseDSN is the CT log's.
func (c *StorageConfig) CTDatabaseDSN() (string, error) {
	return c.CTDatabase.dsn("storage.ctDatabase")
}

func (d DatabaseConfig) dsn(key string) (string, error) {
	if d.DSNFile == "" {
		return d.DSN, nil
	}
	b, err := os.ReadFile(d.DSNFile)
	if err != nil {
		return "", fmt.Errorf("%s.dsnFile: %w", key, err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("%s.dsnFile %s is empty; write the DSN (user:password@tcp(host:3306)/database) in it", key, d.DSNFile)
	}
	return dsn, nil
}

func (c *Config) validateStorage() error {
	st := &c.Storage
	switch st.Driver {
	case "", StorageEmbedded:
		if st.Database.set() || st.CTDatabase.set() || st.IntegrationLoops != 0 || st.Objects.Bucket != "" || st.Objects.Prefix != "" || st.Objects.Endpoint != "" || st.Objects.PathStyle {
			return errors.New("config: storage.database, storage.ctDatabase, storage.integrationLoops and storage.objects are settings of the distributed storage; set storage.driver: distributed, or remove them")
		}
		return nil
	case StorageDistributed:
	default:
		return fmt.Errorf("config: storage.driver %q is not a storage driver; use %q (the data directory, the default) or %q (a database and an object store shared by several servers)", st.Driver, StorageEmbedded, StorageDistributed)
	}
	switch {
	case (st.Database.DSN == "") == (st.Database.DSNFile == ""):
		return errors.New("config: storage.driver distributed needs the database: set storage.database.dsn or storage.database.dsnFile (one of them)")
	case st.Objects.Bucket == "":
		return errors.New("config: storage.driver distributed needs the object store bucket: set storage.objects.bucket")
	case st.Objects.Prefix != "" && !strings.HasSuffix(st.Objects.Prefix, "/"):
		return fmt.Errorf("config: storage.objects.prefix %q must end in /, as a folder of the bucket", st.Objects.Prefix)
	case len(c.Keys.LogRotations) > 0:
		return errors.New("config: keys.logRotations is not supported on the distributed storage yet: each shard would need a database of its own; rotate the log key on the embedded storage, or remove keys.logRotations")
	case st.IntegrationLoops < 0 || st.IntegrationLoops > maxIntegrationLoops:
		return fmt.Errorf("config: storage.integrationLoops %d: give 1 to %d (0 or unset: 4); more loops per server shorten appends' wait, and the loops of all servers contend for the database's integration lock", st.IntegrationLoops, maxIntegrationLoops)
	case st.CTDatabase.DSN != "" && st.CTDatabase.DSNFile != "":
		return errors.New("config: storage.ctDatabase: set dsn or dsnFile, not both")
	case !c.CT.Disabled && !st.CTDatabase.set():
		return errors.New("config: storage.driver distributed needs a database of the certificate transparency log's own (tessera's tables have fixed names, so it cannot share storage.database's): set storage.ctDatabase.dsn or storage.ctDatabase.dsnFile; or set ct.disabled: true, and certificates carry no SCT, which verifiers such as cosign refuse by default")
	case c.CT.Disabled && st.CTDatabase.set():
		return errors.New("config: storage.ctDatabase is the certificate transparency log's database, and ct.disabled is true: remove one of them")
	case sameDatabase(st.Database.DSN, st.CTDatabase.DSN):
		return errors.New("config: " + sameDatabaseMessage(st.CTDatabase.DSN))
	case c.DevOIDC:
		return errors.New("config: --dev-oidc keeps its signing key in each server's data directory, so servers sharing distributed storage would not accept each other's tokens; configure oidcIssuers")
	}
	if st.Objects.Endpoint != "" {
		u, err := url.Parse(st.Objects.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: storage.objects.endpoint %q must be an absolute http(s) URL such as https://s3.example.com", st.Objects.Endpoint)
		}
	}
	return nil
}

// Defaults for the embedded configuration.
const (
	DefaultAddr = "127.0.0.1:8080"
	DefaultData = "./signet-data"
	// A 32 MiB attestation at 2 MB/s fits in the read timeout; a trickle does not.
	DefaultReadTimeout    = 20 * time.Second
	DefaultMaxConnections = 4096
	// DefaultReadHeaderTimeout and DefaultIdleTimeout: headers are a few
	// hundred bytes; an idle connection costs a descriptor and a goroutine.
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// LoadConfig reads a YAML config file. Unknown keys are an error naming
// the key and what its section takes: a typo in a security setting must not
// silently fall back to a default. So is a second YAML document, which
// would otherwise be ignored.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return c, nil // an empty file means "all defaults"
	} else if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		where := ""
		if err == nil {
			where = fmt.Sprintf(" (a --- at line %d starts another)", next.Line)
		}
		return c, fmt.Errorf("config %s: holds more than one YAML document%s; only the first would be read, so put every setting in one", path, where)
	}
	if err := checkKeys(&doc, reflect.TypeOf(c), ""); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	strict := yaml.NewDecoder(bytes.NewReader(b))
	strict.KnownFields(true)
	if err := strict.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// checkKeys walks a YAML node along the type it decodes into and refuses
// the first key that type does not have, naming it by its whole path
// (log.orign, oidcIssuers[1].typ) with the keys its section takes.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time](): // a time is a scalar
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		section := "the top level"
		if path != "" {
			section = path
		}
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil // "log:" with nothing under it
			}
			return fmt.Errorf("line %d: %s must be a mapping of %s", n.Line, section, strings.Join(names, ", "))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: unknown key %s; %s takes %s", k.Line, key, section, strings.Join(names, ", "))
			}
			if err := checkKeys(v, ft, key); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			if err := checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	// Values of the wrong shape are left to the decoder, which names them.
	return nil
}

func (c *Config) applyDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Operator == "" {
		c.Operator = "signet"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.HTTP.ReadTimeout == 0 {
		c.HTTP.ReadTimeout = DefaultReadTimeout
	}
	if c.HTTP.MaxConnections == 0 {
		c.HTTP.MaxConnections = DefaultMaxConnections
	}
	if c.HTTP.ReadHeaderTimeout == 0 {
		c.HTTP.ReadHeaderTimeout = min(DefaultReadHeaderTimeout, c.HTTP.ReadTimeout)
	}
	if c.HTTP.IdleTimeout == 0 {
		c.HTTP.IdleTimeout = DefaultIdleTimeout
	}
}

func (c *Config) validate() error {
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("config: TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: url %q must be an absolute http(s) URL such as https://signet.example.com", c.URL)
		}
	}
	if c.Log.Origin != "" {
		if err := checkOrigin(c.Log.Origin); err != nil {
			return err
		}
	}
	if c.TUF.Key != "" && c.TUF.Dir != "" {
		return errors.New("config: tuf.key is the zero-config repository's key, and tuf.dir a ceremony's repository signed by tuf.onlineKey: set one of them")
	}
	if (c.TUF.Dir == "") != (c.TUF.OnlineKey == "") {
		return errors.New("config: tuf.dir and tuf.onlineKey go together: a published TUF repository (tuf.dir) needs the online key that signs its snapshot and timestamp (tuf.onlineKey); set both, or neither for the zero-config repository")
	}
	if c.HTTP.ReadTimeout < 0 || c.HTTP.MaxConnections < 0 || c.HTTP.ReadHeaderTimeout < 0 || c.HTTP.IdleTimeout < 0 || c.CA.MaxRequestBytes < 0 || c.TSA.MaxRequestBytes < 0 {
		return errors.New("config: http.readTimeout, http.readHeaderTimeout, http.idleTimeout, http.maxConnections, ca.maxRequestBytes and tsa.maxRequestBytes must not be negative")
	}
	if c.HTTP.ReadHeaderTimeout > c.HTTP.ReadTimeout {
		return fmt.Errorf("config: http.readHeaderTimeout %s is longer than http.readTimeout %s, which bounds the headers too; shorten it", c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout)
	}
	for where, r := range map[string]ratelimit.Rule{
		"limits.certificates.perIP": c.Limits.Certificates.PerIP, "limits.certificates.perIdentity": c.Limits.Certificates.PerIdentity,
		"limits.logEntries.perIP": c.Limits.LogEntries.PerIP, "limits.logEntries.perIdentity": c.Limits.LogEntries.PerIdentity,
	} {
		if err := r.Validate(where); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if _, err := ratelimit.ParsePrefixes("limits.trustedProxies", c.Limits.TrustedProxies); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.validateStorage(); err != nil {
		return err
	}
	if len(c.OIDCIssuers) == 0 && !c.DevOIDC {
		return errors.New("config: no OIDC issuer is configured, so the CA could issue no certificate; add oidcIssuers to the config file or pass --dev-oidc for a local trial")
	}
	return nil
}

// checkOrigin refuses a log.origin no Sigstore verifier accepts. C2SP allows
// an origin such as example.com/log, but sigstore-go (and so cosign) and
// signet take a Rekor v2 log's origin from the host name of its baseUrl in
// trusted_root.json: an origin with a path, port or scheme would sign
// checkpoints no client verifies.
func checkOrigin(origin string) error {
	u, err := url.Parse("//" + origin)
	if err != nil || u.Host != origin || u.Hostname() != origin || origin == "" {
		return fmt.Errorf("config: log.origin %q is not a host name; Sigstore verifiers (sigstore-go, cosign, signet) derive a log's checkpoint origin from the host name of its URL in trusted_root.json, so a path, port or scheme in it would make every bundle fail verification: use a host name such as log.example.com, or leave log.origin out to use the url's host", origin)
	}
	return nil
}

// logOrigin is the log's checkpoint origin and the URL the trust files
// name the log at, for the server URL u and the configured origin. The
// origin is the host name verifiers derive from that URL: u's own by
// default; a configured one replaces u's host (port and path kept), and
// that name must reach this server.
func logOrigin(u *url.URL, configured string) (origin, logURL string) {
	if configured == "" || configured == u.Hostname() {
		return u.Hostname(), strings.TrimRight(u.String(), "/")
	}
	l := *u
	l.Host = configured
	if p := u.Port(); p != "" {
		l.Host = net.JoinHostPort(configured, p)
	}
	return configured, strings.TrimRight(l.String(), "/")
}
