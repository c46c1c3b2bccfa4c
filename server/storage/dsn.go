package storage

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Timeouts set in a database DSN that sets none, so that a database that
// stops answering fails requests instead of holding them.
const (
	DBDialTimeout = 5 * time.Second
	DBIOTimeout   = 30 * time.Second
)

// BoundedDSN parses a go-sql-driver/mysql DSN of the distributed storage,
// which must name a database, and bounds the timeouts it leaves unset.
func BoundedDSN(dsn string) (*mysql.Config, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("the database DSN does not parse (%v); write it as user:password@tcp(host:3306)/database", err)
	}
	if c.DBName == "" {
		return nil, errors.New("the database DSN names no database; end it with /database")
	}
	if c.Timeout == 0 {
		c.Timeout = DBDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DBIOTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DBIOTimeout
	}
	return c, nil
}
