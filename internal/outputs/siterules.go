package outputs

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
)

// siteRules are the site's own rules an output merges with the grants
// (-tcprules-static, -courier-smtpaccess-static). They are read at the
// first write and again when a poll finds them changed and then held
// still for a whole poll, so a file an editor is still writing is not
// read half-written. A version that does not parse leaves the one that
// last did in place: the grants keep being written with it, and the
// error is logged once per version and counted. Until a version parses
// (a file broken or missing at start) the output has no rules of the
// site's to write, so it writes nothing and fails.
type siteRules[R any] struct {
	flag, path string // the flag naming them, and its value; "" for none
	into       string // what the output writes, for messages: "the cdb"
	// stamp is the identity, size and time of path and of every file
	// read under it; "" when it cannot be read.
	stamp func(path string) string
	load  func(path string) ([]byte, error)
	parse func([]byte) ([]R, error)
	log   zerolog.Logger

	// Owned by the runner's goroutine (Changed and Write).
	rules     []R    // the version that last parsed (none without a path)
	have      bool   // rules holds a version that parsed (always, without a path)
	readStamp string // the rules when last read, parsed or not
	pollStamp string // ... at the previous poll
	pending   bool   // read them at the next write
	err       error  // why the rules on disk do not parse; nil if they do

	errors atomic.Int64 // versions that did not parse
	stale  atomic.Int64 // 1 while the rules on disk do not parse and older ones are used
}

// errStaticChanging: the rules changed while they were read.
var errStaticChanging = errors.New("changed while it was read")

// start readies the rules: none to read without a path; otherwise they
// are read at the first write, where a failure fails that write (logged,
// counted, retried) and the daemon and the other outputs start all the same.
func (s *siteRules[R]) start() {
	if s.path == "" {
		s.have = true
	} else {
		s.pending = true
	}
}

// changed reports, at each poll, whether the rules changed since they
// were last read and then held still for a whole poll.
func (s *siteRules[R]) changed() bool {
	if s.path == "" {
		return false
	}
	cur := s.stamp(s.path)
	stable := cur == s.pollStamp
	s.pollStamp = cur
	if !stable || cur == s.readStamp {
		return false
	}
	s.pending = true
	return true
}

// refresh reads the rules if the start or a poll asked for it, and
// reports whether a new version replaced the rules.
func (s *siteRules[R]) refresh() bool {
	if !s.pending {
		return false
	}
	s.pending = false
	before := s.stamp(s.path)
	b, err := s.load(s.path)
	if err == nil && s.stamp(s.path) != before {
		return false // the next poll that finds them still reads them
	}
	s.readStamp = before
	var rules []R
	if err != nil {
		err = fmt.Errorf("%s: %w", s.flag, err)
	} else {
		rules, err = s.parseNamed(b)
	}
	if err != nil {
		s.errors.Add(1)
		s.err = err
		if s.have {
			s.stale.Store(1)
			s.log.Error().Err(err).Msgf("the site's rules do not parse; %s keeps the site's rules that last parsed, with the current grants, until they are fixed", s.into)
		}
		return false
	}
	if s.err != nil && s.have {
		s.log.Info().Int("rules", len(rules)).Msgf("the site's rules (%s) parse again; they are in %s", s.flag, s.into)
	}
	s.err = nil
	s.stale.Store(0)
	s.rules, s.have = rules, true
	return true
}

// read loads and parses the rules once, leaving the state alone: what
// relaygate check reads.
func (s *siteRules[R]) read() ([]R, error) {
	b, err := s.load(s.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.flag, err)
	}
	return s.parseNamed(b)
}

func (s *siteRules[R]) parseNamed(b []byte) ([]R, error) {
	rules, err := s.parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.flag, s.path, err)
	}
	return rules, nil
}

// ready says why the output cannot write: no version of the rules has
// parsed since relaygate started.
func (s *siteRules[R]) ready() error {
	if s.have {
		return nil
	}
	err := s.err
	if err == nil {
		err = fmt.Errorf("%s %s %w", s.flag, s.path, errStaticChanging)
	}
	return fmt.Errorf("%w; no version of it has parsed since relaygate started, so %s is left as it was (with the grants it had) until one does", err, s.into)
}

// fileStamp is one file's identity (device and inode), size and time, so
// a file replaced by another of the same size and time still counts as
// changed; "" when it cannot be stat'ed.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	id := ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return fmt.Sprintf("%s %d %d %s\n", path, fi.Size(), fi.ModTime().UnixNano(), id)
}
