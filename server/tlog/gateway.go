package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/ratelog"
)

// gateway collects witness cosignatures (C2SP tlog-witness) on the
// checkpoints the log signs for acknowledged entries. tessera has a witness
// gateway of its own, but it cosigns only what it publishes, at most once
// per checkpoint interval (≥ 100 ms), so every entry would wait for the next
// publication: measured, p50 139 ms at 16 clients and 1,531 entries/s at
// 256 (docs/benchmarks.md). Here a round starts as soon as an integrated
// tree is waiting and covers every entry integrated before it, so an entry
// waits for one witness round trip, and concurrent appends share a round.
type gateway struct {
	policy    *WitnessPolicy
	client    *http.Client
	timeout   time.Duration
	witnesses []*witnessPeer
	tiles     *tileCache
	head      func() *treeHead // the newest head the log signed
	retryWait time.Duration
	// answers counts each witness's answers, so an operator sees which
	// one refuses or is unreachable; logger says why, a line a second.
	answers *prometheus.CounterVec
	logger  *slog.Logger
	errLog  ratelog.Limiter

	mu     sync.Mutex
	latest *treeHead // newest cosigned head (checkpoint with cosignatures)
	round  *round
}

// witnessPeer is one witness and the tree size it is known to hold.
type witnessPeer struct {
	url      string
	verifier note.Verifier
	// mu is held for a whole exchange: a slow witness's answer from an
	// earlier round may still be on its way when the next round starts.
	mu   sync.Mutex
	size uint64 // 0 until the witness says (200 or 409)
}

type round struct {
	done chan struct{}
	err  error
}

func newGateway(p *WitnessPolicy, timeout time.Duration, tiles *tileCache, head func() *treeHead, answers *prometheus.CounterVec, logger *slog.Logger) *gateway {
	g := &gateway{policy: p, client: witnessClient(timeout), timeout: timeout, tiles: tiles, head: head, retryWait: 250 * time.Millisecond,
		answers: answers, logger: logger}
	for url, v := range p.group.Endpoints() {
		g.witnesses = append(g.witnesses, &witnessPeer{url: url, verifier: v})
	}
	return g
}

// cosigned returns the newest cosigned head, if any.
func (g *gateway) cosigned() *treeHead {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.latest
}

// cover waits for a cosigned head whose tree contains index (which the log
// has integrated and signed a head for) and returns it.
func (g *gateway) cover(ctx context.Context, index uint64) (*treeHead, error) {
	var lastErr error
	for {
		g.mu.Lock()
		if th := g.latest; th != nil && th.size > index {
			g.mu.Unlock()
			return th, nil
		}
		r := g.round
		if r == nil {
			r = &round{done: make(chan struct{})}
			g.round = r
			go g.run(r)
		}
		g.mu.Unlock()
		select {
		case <-r.done:
			if r.err != nil {
				lastErr = r.err
			}
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("%w: %v", ctx.Err(), lastErr)
			}
			return nil, ctx.Err()
		}
	}
}

// run is one round: the newest signed head goes to every witness at once,
// and is the new cosigned head once the policy is satisfied.
func (g *gateway) run(r *round) {
	defer func() {
		if r.err != nil {
			// Keep failing rounds from spinning against a dead witness.
			time.Sleep(g.retryWait)
		}
		g.mu.Lock()
		g.round = nil
		g.mu.Unlock()
		close(r.done)
	}()
	th := g.head()
	if th == nil {
		r.err = errors.New("the log has signed no checkpoint yet")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	type answer struct {
		lines []byte
		err   error
	}
	answers := make(chan answer, len(g.witnesses))
	for _, w := range g.witnesses {
		go func() {
			lines, err := g.ask(ctx, w, th)
			answers <- answer{lines, err}
		}()
	}
	cp := bytes.Clone(th.checkpoint)
	var errs []string
	for range g.witnesses {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err.Error())
			continue
		}
		cp = append(cp, a.lines...)
		if g.policy.group.Satisfied(cp) {
			// Later answers are not waited for: the quorum is met.
			g.mu.Lock()
			if g.latest == nil || g.latest.size < th.size {
				g.latest = &treeHead{size: th.size, root: th.root, checkpoint: cp}
			}
			g.mu.Unlock()
			return
		}
	}
	r.err = fmt.Errorf("witness policy not met for tree size %d: %s", th.size, strings.Join(errs, "; "))
}

// ask sends one checkpoint to one witness (C2SP tlog-witness
// add-checkpoint) and returns its cosignature lines. A 409 names the size
// the witness holds; the request is then made again from that size.
func (g *gateway) ask(ctx context.Context, w *witnessPeer, th *treeHead) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		old := w.size
		if old > th.size {
			return nil, fmt.Errorf("%s holds tree size %d, larger than the log's %d", w.url, old, th.size)
		}
		body, err := g.request(ctx, old, th)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		resp, err := g.client.Do(req)
		if err != nil {
			g.answers.WithLabelValues(req.URL.Host, "error").Inc()
			g.errLog.Error(g.logger, "witness unreachable", "witness", w.url, "error", err)
			return nil, fmt.Errorf("%s: %v", w.url, err)
		}
		g.answers.WithLabelValues(req.URL.Host, strconv.Itoa(resp.StatusCode)).Inc()
		// A cosignature line is short; bound what a witness can send.
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the answer: %v", w.url, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			lines, err := cosignatureLines(b, w.verifier)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", w.url, err)
			}
			w.size = th.size
			return lines, nil
		case http.StatusConflict:
			n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s answered 409 without its tree size: %q", w.url, b)
			}
			w.size = n
			continue
		default:
			g.errLog.Error(g.logger, "witness refused the checkpoint", "witness", w.url, "status", resp.StatusCode, "meaning", witnessStatus(resp.StatusCode))
			return nil, fmt.Errorf("%s answered %d: %s", w.url, resp.StatusCode, witnessStatus(resp.StatusCode))
		}
	}
	return nil, fmt.Errorf("%s kept changing its tree size", w.url)
}

// request is an add-checkpoint body: the size the witness holds, a
// consistency proof from it, a blank line, the signed checkpoint.
func (g *gateway) request(ctx context.Context, old uint64, th *treeHead) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < th.size {
		nodes, err := proof.Consistency(old, th.size)
		if err != nil {
			return nil, err
		}
		hashes, err := g.tiles.nodes(ctx, nodes.IDs, th.size)
		if err != nil {
			return nil, fmt.Errorf("consistency proof %d→%d: %w", old, th.size, err)
		}
		p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
		if err != nil {
			return nil, err
		}
		for _, h := range p {
			b.WriteString(base64.StdEncoding.EncodeToString(h))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	b.Write(th.checkpoint)
	return b.Bytes(), nil
}

// cosignatureLines keeps the answer's signature lines by the witness's key
// (name and key hash): a witness cannot add lines under other names.
func cosignatureLines(b []byte, v note.Verifier) ([]byte, error) {
	var out []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "—" || f[1] != v.Name() {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || len(raw) < 4 || uint32(raw[0])<<24|uint32(raw[1])<<16|uint32(raw[2])<<8|uint32(raw[3]) != v.KeyHash() {
			continue
		}
		out = append(out, "— "+f[1]+" "+f[2]+"\n"...)
	}
	if out == nil {
		return nil, errors.New("answered 200 without a cosignature line of its key")
	}
	return out, nil
}
