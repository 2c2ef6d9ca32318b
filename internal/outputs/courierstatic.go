package outputs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// courierDpkgFile is what makedat's find leaves out of a rules directory
// besides backups ("*~"): dpkg's leftovers (-regex ".*\.dpkg-[a-z]*").
var courierDpkgFile = regexp.MustCompile(`\.dpkg-[a-z]*$`)

// courierStaticFiles is what makedat reads for path: the file itself, or
// for a directory (Debian's /etc/courier/smtpaccess/) the files in it
// (symbolic links followed, subdirectories skipped, not "*~" nor
// "*.dpkg-*"), here in the order of their names.
func courierStaticFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			// A FIFO or a device would block the read, or never end.
			return nil, fmt.Errorf("%s: neither a regular file nor a directory", path)
		}
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, "~") || courierDpkgFile.MatchString(n) {
			continue
		}
		p := filepath.Join(path, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// courierStamp tells whether the static rules changed: the identity,
// size and time of the path and of each file makedat would read there;
// "" when it cannot be read.
func courierStamp(path string) string {
	files, err := courierStaticFiles(path)
	if err != nil {
		return ""
	}
	var sb strings.Builder
	for _, p := range append([]string{path}, files...) {
		fi, err := os.Stat(p)
		if err != nil {
			return ""
		}
		fmt.Fprintf(&sb, "%s %d %d %v\n", p, fi.Size(), fi.ModTime().UnixNano(), fileID(fi))
	}
	return sb.String()
}

// Changed reports, at each poll, whether the static rules changed since
// they were last read and then held still for a whole poll, as tcprules'
// static file (a file an editor is still writing is not read).
func (o *courier) Changed() bool {
	if o.static == "" {
		return false
	}
	cur := courierStamp(o.static)
	stable := cur == o.pollStamp
	o.pollStamp = cur
	if !stable || cur == o.readStamp {
		return false
	}
	o.pending = true
	return true
}

// readStatic reads and parses the static rules, refusing a read during
// which they changed. The files are joined as makedat's cat joins them,
// except that each one's last line ends there even without a newline.
func (o *courier) readStatic() ([]courierRule, string, error) {
	before := courierStamp(o.static)
	files, err := courierStaticFiles(o.static)
	if err != nil {
		return nil, before, fmt.Errorf("-courier-smtpaccess-static: %w", err)
	}
	var text []byte
	for _, f := range files {
		b, err := readCapped(f, maxCourierStatic-int64(len(text)))
		if err != nil {
			return nil, before, fmt.Errorf("-courier-smtpaccess-static: %w", err)
		}
		text = append(text, b...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			text = append(text, '\n')
		}
	}
	if after := courierStamp(o.static); after != before {
		return nil, after, errStaticChanging
	}
	rules, err := parseCourierAccess(text)
	if err != nil {
		return nil, before, fmt.Errorf("-courier-smtpaccess-static %s: %w", o.static, err)
	}
	return rules, before, nil
}

// maxCourierStatic bounds the size of the static rules, all files
// together: they are read whole.
const maxCourierStatic = 64 << 20

// readCapped reads the file path, failing if it holds more than limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: the static rules are larger than %d bytes", path, maxCourierStatic)
	}
	return b, nil
}

// reload reads the static rules once; as tcprules' reload, rules that do
// not parse leave those that last did in place, and are logged once per
// version and counted.
func (o *courier) reload() {
	rules, st, err := o.readStatic()
	if errors.Is(err, errStaticChanging) {
		return
	}
	o.readStamp = st
	if err != nil {
		o.staticErrors.Add(1)
		o.staticErr = err
		if o.haveRules {
			o.staticStale.Store(1)
			o.log.Error().Err(err).Msg("the static Courier access rules do not parse; the access file keeps the site's rules that last parsed, with the current grants, until they are fixed")
		}
		return
	}
	if o.staticErr != nil && o.haveRules {
		o.log.Info().Int("rules", len(rules)).Msg("the static Courier access rules parse again; they are in the access file")
	}
	o.staticErr = nil
	o.staticStale.Store(0)
	o.order, o.rules, o.haveRules = rules, make(map[string]string, len(rules)), true
	for _, r := range rules {
		o.rules[r.key] = r.value
	}
}

// fileID is a file's identity (device and inode), so a file replaced by
// another of the same size and time still counts as changed.
func fileID(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
