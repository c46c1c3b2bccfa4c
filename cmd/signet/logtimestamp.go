package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/tlog"
	"github.com/signet-dev/signet/core/verify"
)

// timestampSearchResult is `signet log search --timestamp FILE -o json`.
type timestampSearchResult struct {
	File       string          `json:"file"`
	Timestamps []timestampJSON `json:"timestamps"`
}

type timestampJSON struct {
	Time   time.Time `json:"time"`
	TSA    string    `json:"tsa"`
	Logged bool      `json:"logged"`
	// LogURL and LogIndex name the entry; TreeSize is the log's current
	// checkpoint, in which the entry was just proven included.
	LogURL   string `json:"logUrl,omitempty"`
	LogIndex int64  `json:"logIndex,omitempty"`
	TreeSize uint64 `json:"treeSize,omitempty"`
}

// searchTimestamps finds the log entry of each timestamp in file (a
// bundle, or a DER TimeStampResp): the entry each carries is verified
// offline as the verifier does, then read from the log and proven included
// in its current checkpoint.
func searchTimestamps(cmd *cobra.Command, trust *trustSource, out outputFormat, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return usageError{fmt.Errorf("--timestamp: %v", err)}
	}
	var stamps [][]byte
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		b, err := bundle.Parse(raw)
		if err != nil {
			return usageError{fmt.Errorf("--timestamp %s: not a Sigstore bundle: %v", file, err)}
		}
		stamps = b.RFC3161Timestamps()
		if len(stamps) == 0 {
			return usageError{fmt.Errorf("--timestamp %s: the bundle carries no RFC 3161 timestamp", file)}
		}
	} else {
		stamps = [][]byte{raw}
	}
	hc := httpClient()
	root, err := trust.root(cmd.Context(), hc, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	v := verify.New(root.Root)
	res := timestampSearchResult{File: file, Timestamps: []timestampJSON{}}
	unlogged := 0
	for i, s := range stamps {
		lt, err := v.VerifyTimestamp(s)
		if err != nil {
			return fmt.Errorf("timestamp %d of %s: %w", i, file, err)
		}
		j := timestampJSON{Time: lt.Time, TSA: lt.TSA, Logged: lt.Logged}
		if !lt.Logged {
			unlogged++
			res.Timestamps = append(res.Timestamps, j)
			continue
		}
		l, err := tlog.Open(cmd.Context(), root.Root, lt.Entry.BaseURL, hc)
		if err != nil {
			return err
		}
		e, err := l.Entry(cmd.Context(), uint64(lt.Entry.LogIndex))
		if err != nil {
			return beyondLog("the timestamp's log entry", uint64(lt.Entry.LogIndex), l.Checkpoint().Size, err)
		}
		if !bytes.Equal(e.Body, lt.Body) {
			return fmt.Errorf("timestamp %d of %s: log %s holds another entry at index %d than the one the timestamp carries", i, file, lt.Entry.BaseURL, lt.Entry.LogIndex)
		}
		j.LogURL, j.LogIndex, j.TreeSize = lt.Entry.BaseURL, lt.Entry.LogIndex, l.Checkpoint().Size
		res.Timestamps = append(res.Timestamps, j)
	}
	if out.json() {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		w := cmd.OutOrStdout()
		for _, t := range res.Timestamps {
			if !t.Logged {
				fmt.Fprintf(w, "%s  from %s: not logged (the response carries no log entry)\n", t.Time.Format(time.RFC3339), t.TSA)
				continue
			}
			fmt.Fprintf(w, "%s  from %s: log %s entry %d, included in its checkpoint of %d entries (verified now)\n", t.Time.Format(time.RFC3339), t.TSA, t.LogURL, t.LogIndex, t.TreeSize)
		}
	}
	if unlogged > 0 {
		return errors.New(fmt.Sprint(unlogged, " of ", len(stamps), " timestamp(s) in ", file, " carry no log entry"))
	}
	return nil
}
