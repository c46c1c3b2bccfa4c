package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-dev/signet/server/identity"
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
	} `yaml:"ca"`

	Log struct {
		// Origin is the checkpoint origin line and key name; default: the
		// URL's host name without port, which is what Sigstore verifiers expect.
		Origin             string        `yaml:"origin"`
		CheckpointInterval time.Duration `yaml:"checkpointInterval"`
		BatchMaxAge        time.Duration `yaml:"batchMaxAge"`
		BatchMaxSize       uint          `yaml:"batchMaxSize"`
		MaxRequestBytes    int64         `yaml:"maxRequestBytes"`
	} `yaml:"log"`

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
		// MaxConnections bounds the client connections served at once;
		// further ones wait in the listen backlog.
		MaxConnections int `yaml:"maxConnections"`
	} `yaml:"http"`
	// ShutdownTimeout bounds graceful shutdown on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// Defaults for the embedded configuration.
const (
	DefaultAddr = "127.0.0.1:8080"
	DefaultData = "./signet-data"
	// A 32 MiB attestation at 2 MB/s fits in the read timeout; a trickle does not.
	DefaultReadTimeout    = 20 * time.Second
	DefaultMaxConnections = 4096
)

// LoadConfig reads a YAML config file. Unknown keys are an error: a typo in a
// security setting must not silently fall back to a default.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file means "all defaults".
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
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
	if c.HTTP.ReadTimeout < 0 || c.HTTP.MaxConnections < 0 {
		return errors.New("config: http.readTimeout and http.maxConnections must not be negative")
	}
	if len(c.OIDCIssuers) == 0 && !c.DevOIDC {
		return errors.New("config: no OIDC issuer is configured, so the CA could issue no certificate; add oidcIssuers to the config file or pass --dev-oidc for a local trial")
	}
	return nil
}
