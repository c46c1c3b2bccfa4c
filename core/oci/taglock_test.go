package oci

import (
	"sync"
	"testing"
	"time"
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

// A memo forgets keys after its TTL, on forget, and all of them past its
// bound, so a long-running process neither trusts stale facts nor grows.
func TestMemo(t *testing.T) {
	m := newMemo(50*time.Millisecond, 3)
	m.add("a")
	if !m.has("a") || m.has("b") {
		t.Fatal("has after add")
	}
	if !m.forget("a") || m.has("a") || m.forget("a") {
		t.Error("forget")
	}
	m.add("x")
	time.Sleep(60 * time.Millisecond)
	if m.has("x") {
		t.Error("kept past its TTL")
	}
	for _, k := range []string{"1", "2", "3", "4"} {
		m.add(k)
	}
	if len(m.m) > 3 || !m.has("4") {
		t.Errorf("%d keys kept, bound 3", len(m.m))
	}
}
