package oci

import (
	"sync"
	"testing"
)

// Holders of one tag's lock take turns, and a lock nobody holds or waits
// for is dropped, so a long-running process keeps none for idle tags.
func TestLockTag(t *testing.T) {
	var wg sync.WaitGroup
	inside, most := 0, 0
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 50 {
				unlock := lockTag("r/app:sha256-x")
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders at once; want 1", most)
	}
	tagLocks.Lock()
	defer tagLocks.Unlock()
	if len(tagLocks.m) != 0 {
		t.Errorf("%d locks kept after every holder left", len(tagLocks.m))
	}
}
