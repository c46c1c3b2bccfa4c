package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/go-sql-driver/mysql"

	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
)

// checkSharedKeys refuses to start a server on distributed storage that
// would generate keys of its own: every server of one deployment signs
// with the same keys, or clients see as many CAs and logs as servers.
func checkSharedKeys(dir *storage.Dir, cfg Config) error {
	supplied := cfg.Keys.CAKey != "" && cfg.Keys.LogKey != "" && cfg.Keys.TSAKey != ""
	if !dir.HasKeys() && !supplied {
		return fmt.Errorf("storage.driver distributed: %s holds no keys, and servers sharing one log must not generate their own: give every server the same keys (keys.caKey + keys.caChain, keys.logKey, keys.tsaKey + keys.tsaChain: files, PKCS#11 or KMS URIs), or copy one key directory into each server's data directory (docs/scale-out.md)", dir.KeysDir())
	}
	if !cfg.CT.Disabled && cfg.Keys.CTLogKey == "" && !dir.HasCTLogKey() {
		return fmt.Errorf("storage.driver distributed: %s holds no CT log key (ctlog.key), and servers sharing one CT log must not generate their own: copy it with the other keys, or set keys.ctLogKey", dir.KeysDir())
	}
	if cfg.TUF.Dir == "" && cfg.TUF.Key == "" && !dir.HasTUFKey() {
		return errors.New("storage.driver distributed: the zero-config TUF repository's key would be generated per server; set tuf.key (shared by every server), or tuf.dir and tuf.onlineKey, or copy keys/tuf.key with the other keys")
	}
	return nil
}

// distributedLog is the log's distributed storage from the configuration.
// The object store's credentials and region are the AWS SDK's (variables,
// profile, instance or task role), as for awskms:// keys.
func distributedLog(ctx context.Context, st StorageConfig, logger *slog.Logger) (*tlog.Distributed, error) {
	dsn, err := st.DatabaseDSN()
	if err != nil {
		return nil, err
	}
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return nil, fmt.Errorf("storage.database: the DSN does not parse (%v); write it as user:password@tcp(host:3306)/database", err)
	}
	aws, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage.objects: the AWS SDK's configuration does not load (check AWS_PROFILE, AWS_REGION and the files they name): %w", err)
	}
	if aws.Region == "" {
		return nil, errors.New("storage.objects: no AWS region is configured for the object store; set AWS_REGION (any value the store accepts, for stores other than AWS S3)")
	}
	// The driver's own log lines (dropped connections) in the server's
	// structured log, not on stderr.
	_ = mysql.SetLogger(mysqlLogger{logger.With("component", "mysql")})
	return &tlog.Distributed{
		DSN:         dsn,
		Bucket:      st.Objects.Bucket,
		Prefix:      st.Objects.Prefix,
		AWS:         aws,
		Endpoint:    st.Objects.Endpoint,
		PathStyle:   st.Objects.PathStyle,
		Integrators: st.IntegrationLoops,
	}, nil
}

// distributedCT is the CT log's distributed storage: its own database
// (storage.ctDatabase), and the log's bucket under the prefix "ctlog/",
// as the embedded storage keeps it in the data directory's ctlog/.
func distributedCT(st StorageConfig, log *tlog.Distributed) (*tlog.Distributed, error) {
	dsn, err := st.CTDatabaseDSN()
	if err != nil {
		return nil, err
	}
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return nil, fmt.Errorf("storage.ctDatabase: the DSN does not parse (%v); write it as user:password@tcp(host:3306)/database", err)
	}
	// Again, for DSNs from files.
	if sameDatabase(log.DSN, dsn) {
		return nil, errors.New(sameDatabaseMessage(dsn))
	}
	d := *log
	d.DSN, d.Prefix = dsn, log.Prefix+CTObjectsPrefix
	return &d, nil
}

// CTObjectsPrefix is where, under storage.objects.prefix, the CT log's
// objects are.
const CTObjectsPrefix = "ctlog/"

type mysqlLogger struct{ l *slog.Logger }

func (m mysqlLogger) Print(v ...any) { m.l.Warn(fmt.Sprint(v...)) }
