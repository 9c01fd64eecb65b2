// Package procstat is about the helper processes of this binary that
// outlive the agent starting them (a shim, a drive server): how to start
// one, and how to tell it apart from a later process that reuses its PID,
// by the start time /proc records for it, which it writes down so that an
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
	fields, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	_, err = fmt.Sscan(fields[19], &start) // field 22 overall: fields here start at field 3
	return fields[0][0], start, err
}

// Parent returns process pid's parent, from /proc/PID/stat.
func Parent(pid int) (int, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	var ppid int
	_, err = fmt.Sscan(fields[1], &ppid) // field 4 overall
	return ppid, err
}

// statFields returns the fields of /proc/PID/stat from the third (the
// state) on.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name (field 2) may contain spaces; fields resume after the last ')'.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 <= len(s) {
		s = s[i+2:]
	}
	fields := strings.Fields(s)
	if len(fields) < 20 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return fields, nil
}

// Command returns how to start a helper process of this binary (a
// hidden command such as `weft shim`): given when it is set (tests run
// their own binary), else this executable with the argument verb.
func Command(given []string, verb string) ([]string, error) {
	if len(given) > 0 {
		return given, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return []string{exe, verb}, nil
}

// Alive reports whether the process pid, started at start, still runs: a
// zombie (ended, not yet reaped by whoever adopted it) does not.
func Alive(pid int, start uint64) bool {
	state, s, err := Stat(pid)
	return err == nil && s == start && state != 'Z'
}
