// Package proccpu reads how much CPU the processes on this machine have
// used, by command name, from /proc: benchmarks that run several real
// servers on two cores report where the cores went (registry, apiserver,
// signet server, …) beside their throughput.
package proccpu

import (
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat; 100 on every
// Linux architecture Go supports.
const userHZ = 100

// ByCommand sums user and system CPU seconds of every live process by
// command name (the kernel's comm: at most 15 characters).
func ByCommand() map[string]float64 {
	out := map[string]float64{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // exited since the listing
		}
		if comm, sec, ok := parseStat(string(b)); ok {
			out[comm] += sec
		}
	}
	return out
}

// parseStat reads comm and utime+stime from one /proc/<pid>/stat line:
// "pid (comm) state ppid …", utime and stime the 14th and 15th fields. comm
// may hold spaces and parentheses, so it ends at the last ')'.
func parseStat(s string) (comm string, seconds float64, ok bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return s[open+1 : end], (u + st) / userHZ, true
}

// Since is the CPU seconds each command used after before was taken, for
// commands that used at least min seconds. A process that exited in between
// is not counted.
func Since(before map[string]float64, min float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range ByCommand() {
		if d := v - before[k]; d >= min {
			out[k] = d
		}
	}
	return out
}
