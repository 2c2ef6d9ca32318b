package outputs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
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
		st := fileStamp(p)
		if st == "" {
			return ""
		}
		sb.WriteString(st)
	}
	return sb.String()
}

// Changed reports, at each poll, whether the static rules changed and
// then held still for a whole poll (siteRules).
func (o *courier) Changed() bool { return o.site.changed() }

// useSiteRules takes a version of the static rules that parsed.
func (o *courier) useSiteRules() {
	o.rules = make(map[string]string, len(o.site.rules))
	for _, r := range o.site.rules {
		o.rules[r.key] = r.value
	}
}

// loadCourierStatic reads the static rules as makedat's cat joins them,
// except that each file's last line ends there even without a newline.
func loadCourierStatic(path string) ([]byte, error) {
	files, err := courierStaticFiles(path)
	if err != nil {
		return nil, err
	}
	var text []byte
	for _, f := range files {
		b, err := readCapped(f, maxCourierStatic-int64(len(text)))
		if err != nil {
			return nil, err
		}
		text = append(text, b...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			text = append(text, '\n')
		}
	}
	return text, nil
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
