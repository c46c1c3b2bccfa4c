// Package backendtest starts the distributed storage's two backends for a
// test, a MariaDB (internal/mysqltest) and an S3-compatible server
// (internal/s3test), at once: each takes seconds to start.
package backendtest

import (
	"sync"
	"testing"

	"github.com/signet-dev/signet/internal/mysqltest"
	"github.com/signet-dev/signet/internal/s3test"
)

// Start starts both, stopped when the test ends. In -short runs it skips
// the test.
func Start(t testing.TB) (*mysqltest.Server, *s3test.Server) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts MariaDB and versitygw")
	}
	var (
		db      *mysqltest.Server
		objects *s3test.Server
		wg      sync.WaitGroup
	)
	wg.Go(func() { db = mysqltest.Start(t) })
	wg.Go(func() { objects = s3test.Start(t) })
	wg.Wait()
	if db == nil || objects == nil {
		t.FailNow() // Start reported why
	}
	return db, objects
}
