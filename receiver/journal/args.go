package journal

import (
	"strconv"
	"strings"
)

// Matches returns journalctl's match arguments for the program tags:
// SYSLOG_IDENTIFIER=tag for each (journalctl ORs matches of one field).
// relaygate compares tags without regard to ASCII case, journalctl
// exactly, so each tag is asked for as given, in upper case and
// capitalised ("dovecot", "DOVECOT", "Dovecot"); another mix of case is
// not read.
func Matches(programs []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, "SYSLOG_IDENTIFIER="+p)
		}
	}
	for _, p := range programs {
		add(p)
		add(strings.ToLower(p))
		add(strings.ToUpper(p))
		l := strings.ToLower(p)
		add(strings.ToUpper(l[:1]) + l[1:])
	}
	return out
}

// args is journalctl's command line for one run.
//
// Not --all: with it journalctl prints a field of any size, one that is
// not text as a JSON array of its bytes, and builds that array in memory
// first (some 40 bytes for each byte: a 20 MiB MESSAGE any local user can
// send over journald's native socket takes journalctl 850 MB, and where
// that fails, "Failed to allocate JSON data", it exits at the same entry
// on every run). Without it a field of 4096 bytes or more is printed as
// null (skipped as no_message); no login line is that long.
func (r *Reader) args(programs []string) []string {
	a := append([]string{"--follow", "--output=json", "--no-pager", "--output-fields=" + outputFields}, r.sourceArgs()...)
	return append(append(a, r.positionArgs()...), Matches(programs)...)
}

// sourceArgs are the options that choose the journal read: this host's
// entries (see MachineID), in Directory if set.
func (r *Reader) sourceArgs() []string {
	var a []string
	if r.cfg.Directory != "" {
		a = append(a, "--directory="+r.cfg.Directory)
	}
	if r.cfg.MachineID != "" {
		a = append(a, "_MACHINE_ID="+r.cfg.MachineID)
	}
	return a
}

// positionArgs say where a run starts.
func (r *Reader) positionArgs() []string {
	switch {
	case r.position == "":
		return []string{"--since=@" + strconv.FormatInt(r.since.Unix(), 10)}
	case r.positionSkipped:
		// An entry that exists (the probe just printed its cursor) and
		// must not be printed.
		return []string{"--after-cursor=" + r.position}
	}
	// --cursor, not --after-cursor: journalctl 252's --after-cursor skips
	// one entry blindly, which loses an entry when the cursor's own entry
	// was vacuumed. The entry at the cursor, when it still exists, is
	// skipped here instead (skipFirst).
	return []string{"--cursor=" + r.position}
}
