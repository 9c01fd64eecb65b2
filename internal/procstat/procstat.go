// Package procstat tells a process apart from a later one that reuses its
// PID, by the start time /proc records for it: what a supervisor that
// outlives its parent (a shim, a drive server) writes down so that an
// agent started later can find it again.
package procstat

import (
	"fmt"
	"os"
	"strings"
)

// Stat returns process pid's state letter (R, S, Z...) and its start
// time in clock ticks after boot, from /proc/PID/stat.
func Stat(pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces; fields resume after the last ')'.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 <= len(s) {
		s = s[i+2:]
	}
	fields := strings.Fields(s)
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	_, err = fmt.Sscan(fields[19], &start) // field 22 overall: fields here start at field 3
	return fields[0][0], start, err
}

// Alive reports whether the process pid, started at start, still runs: a
// zombie (ended, not yet reaped by whoever adopted it) does not.
func Alive(pid int, start uint64) bool {
	state, s, err := Stat(pid)
	return err == nil && s == start && state != 'Z'
}
