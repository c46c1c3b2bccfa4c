package verify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// WitnessPolicy says which witnesses must have cosigned (C2SP
// tlog-cosignature, cosignature/v1) the checkpoint of every log entry a
// bundle proves. The file format is the one tessera's log reads to know
// whom to ask (Sigsum's policy format with C2SP signed-note vkeys), so an
// operator hands clients the file the log runs with:
//
//	witness NAME VKEY [URL]        # URL is for the log; verifiers ignore it
//	group NAME K|all|any MEMBER... # members: witnesses or earlier groups
//	quorum NAME                    # the witness or group that must be satisfied
//	log VKEY [URL]                 # accepted and ignored, as tessera does
//
// "quorum none" requires nothing. Comments start with #.
type WitnessPolicy struct {
	quorum    string
	witnesses map[string]*policyWitness
	groups    map[string]*policyGroup
	order     []string // witness names in file order, for messages
}

type policyWitness struct {
	name     string
	verifier note.Verifier
}

type policyGroup struct {
	name    string
	k       int
	members []string
}

// ParseWitnessPolicy reads a witness policy file. Errors name the line.
func ParseWitnessPolicy(p []byte) (*WitnessPolicy, error) {
	wp := &WitnessPolicy{witnesses: map[string]*policyWitness{}, groups: map[string]*policyGroup{}}
	sc := bufio.NewScanner(bytes.NewReader(p))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("witness policy line %d: %s", n, fmt.Sprintf(format, a...))
		}
		switch f[0] {
		case "log":
		case "witness":
			if len(f) != 3 && len(f) != 4 {
				return nil, bad("want \"witness NAME VKEY [URL]\", got %d fields", len(f))
			}
			if err := wp.newName(f[1]); err != nil {
				return nil, bad("%v", err)
			}
			v, err := fnote.NewVerifierForCosignatureV1(f[2])
			if err != nil {
				return nil, bad("witness %s: key %q is not a C2SP signed-note verifier key (name+hash+base64, type 0x04 cosignature/v1 or Ed25519): %v", f[1], f[2], err)
			}
			wp.witnesses[f[1]] = &policyWitness{name: f[1], verifier: v}
			wp.order = append(wp.order, f[1])
		case "group":
			if len(f) < 4 {
				return nil, bad("want \"group NAME K|all|any MEMBER...\" with at least one member")
			}
			if err := wp.newName(f[1]); err != nil {
				return nil, bad("%v", err)
			}
			g := &policyGroup{name: f[1], members: f[3:]}
			for _, m := range g.members {
				if wp.witnesses[m] == nil && wp.groups[m] == nil {
					return nil, bad("group %s: member %q is not a witness or group defined above it", f[1], m)
				}
			}
			switch f[2] {
			case "any":
				g.k = 1
			case "all":
				g.k = len(g.members)
			default:
				k, err := strconv.Atoi(f[2])
				if err != nil || k < 1 || k > len(g.members) {
					return nil, bad("group %s: threshold %q must be any, all or a number from 1 to %d", f[1], f[2], len(g.members))
				}
				g.k = k
			}
			wp.groups[f[1]] = g
		case "quorum":
			if len(f) != 2 {
				return nil, bad("want \"quorum NAME\"")
			}
			if wp.quorum != "" {
				return nil, bad("a second quorum line; a policy has one")
			}
			if f[1] != "none" && wp.witnesses[f[1]] == nil && wp.groups[f[1]] == nil {
				return nil, bad("quorum %q is not a witness or group defined above it", f[1])
			}
			wp.quorum = f[1]
		default:
			return nil, bad("unknown keyword %q; a policy has log, witness, group and quorum lines", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if wp.quorum == "" {
		return nil, errors.New("witness policy has no quorum line; end it with \"quorum NAME\" naming the witness or group that must cosign")
	}
	return wp, nil
}

func (wp *WitnessPolicy) newName(name string) error {
	switch name {
	case "witness", "group", "quorum", "log", "any", "all", "none":
		return fmt.Errorf("%q is a keyword, not a name", name)
	}
	if wp.witnesses[name] != nil || wp.groups[name] != nil {
		return fmt.Errorf("%q is defined twice", name)
	}
	return nil
}

// cosigners checks every witness of the policy against a checkpoint: the
// names whose cosignature verifies, and why each other one does not count.
func (wp *WitnessPolicy) cosigners(envelope string) (ok map[string]bool, why map[string]string) {
	ok, why = map[string]bool{}, map[string]string{}
	for _, name := range wp.order {
		w := wp.witnesses[name]
		_, err := note.Open([]byte(envelope), note.VerifierList(w.verifier))
		var unverified *note.UnverifiedNoteError
		switch {
		case err == nil:
			ok[name] = true
		case errors.As(err, &unverified):
			why[name] = "no cosignature"
		default:
			why[name] = "cosignature does not verify"
		}
	}
	return ok, why
}

// satisfied evaluates a policy component.
func (wp *WitnessPolicy) satisfied(name string, ok map[string]bool) bool {
	if _, isWitness := wp.witnesses[name]; isWitness {
		return ok[name]
	}
	g := wp.groups[name]
	n := 0
	for _, m := range g.members {
		if wp.satisfied(m, ok) {
			n++
		}
	}
	return n >= g.k
}

// Check verifies that a checkpoint satisfies the quorum and returns the
// witnesses whose cosignature verifies. It checks cosignatures only: the
// log's own signature is OpenCheckpoint's (or the bundle verifier's) job.
// Failures are *Error with CheckWitness.
func (wp *WitnessPolicy) Check(signedNote []byte) ([]string, error) {
	return wp.check(string(signedNote))
}

func (wp *WitnessPolicy) check(envelope string) ([]string, error) {
	ok, why := wp.cosigners(envelope)
	var signed []string
	for _, name := range wp.order {
		if ok[name] {
			signed = append(signed, name)
		}
	}
	if wp.quorum == "none" || wp.satisfied(wp.quorum, ok) {
		return signed, nil
	}
	var missing []string
	for _, name := range wp.order {
		if !ok[name] {
			missing = append(missing, name+" ("+why[name]+")")
		}
	}
	need := "witness " + wp.quorum
	if g := wp.groups[wp.quorum]; g != nil {
		need = fmt.Sprintf("group %s (%d of %s)", g.name, g.k, strings.Join(g.members, ", "))
	}
	got := "none"
	if len(signed) > 0 {
		got = strings.Join(signed, ", ")
	}
	return signed, fail(CheckWitness, nil, "checkpoint does not satisfy the witness policy: quorum %s; cosigned by %s; not by %s", need, got, strings.Join(missing, ", "))
}
