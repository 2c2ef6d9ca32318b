package origin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoginDefs is where the login UID range is set.
const LoginDefs = "/etc/login.defs"

// LoadUIDMin reads UID_MIN from a login.defs file the way shadow-utils
// (useradd) reads it, since the two must agree where login users begin:
// the last UID_MIN line wins, the value may be in double quotes, and it is
// a C number (0x… hexadecimal, a leading 0 octal). A missing file or a file
// without UID_MIN gives DefaultUIDMin; a UID_MIN that is not a number is an
// error, since guessing would move the line between system and login
// accounts.
func LoadUIDMin(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultUIDMin, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	uidMin := int64(DefaultUIDMin)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "UID_MIN" {
			continue
		}
		v, ok := parseCNumber(strings.Trim(fields[1], `"`))
		if !ok || v < 1 || v > 1<<32-1 {
			return 0, fmt.Errorf("%s:%d: UID_MIN %q is not a uid", path, n, fields[1])
		}
		uidMin = int64(v)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return uidMin, nil
}

// parseCNumber reads an unsigned number as strtoul(s, NULL, 0) does for
// well-formed input: 0x or 0X hexadecimal, a leading 0 octal, else decimal;
// nothing else (no sign, no spaces, no digit separators).
func parseCNumber(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, false
	}
	v, err := strconv.ParseUint(s, base, 64)
	return v, err == nil
}

// pinsFile is the YAML document -origin-file reads.
type pinsFile struct {
	UIDMin  *int64             `yaml:"uid_min"`
	Daemons map[string]pinSpec `yaml:"daemons"`
}

type pinSpec struct {
	UIDs  []int64  `yaml:"uids"`
	Units []string `yaml:"units"`
	Exes  []string `yaml:"exes"`
	Comms []string `yaml:"comms"`
}

// FileConfig is what an origin file sets.
type FileConfig struct {
	UIDMin int64 // 0 when the file does not set it
	Pins   map[string]Pin
}

// maxFileSize bounds what LoadFile reads: an origin file is a few lines.
const maxFileSize = 1 << 20

// LoadFile reads an origin file. known says whether a daemon name is one
// the parsers can produce; every error of the file is reported at once.
func LoadFile(path string, known func(string) bool) (FileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("origin file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return FileConfig{}, fmt.Errorf("origin file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return FileConfig{}, fmt.Errorf("origin file %s: over %d bytes", path, maxFileSize)
	}
	cfg, err := ParseFile(data, known)
	if err != nil {
		return FileConfig{}, fmt.Errorf("origin file %s: %w", path, err)
	}
	return cfg, nil
}

// ParseFile reads an origin file's content.
func ParseFile(data []byte, known func(string) bool) (FileConfig, error) {
	var doc pinsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return FileConfig{}, err
	}
	var errs []error
	cfg := FileConfig{Pins: map[string]Pin{}}
	if doc.UIDMin != nil {
		if *doc.UIDMin < 1 || *doc.UIDMin > 1<<32-1 {
			errs = append(errs, fmt.Errorf("uid_min %d: not a uid above 0", *doc.UIDMin))
		} else {
			cfg.UIDMin = *doc.UIDMin
		}
	}
	names := make([]string, 0, len(doc.Daemons))
	for name := range doc.Daemons {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec := doc.Daemons[name]
		if known != nil && !known(name) {
			errs = append(errs, fmt.Errorf("daemons: %q is not a daemon any parser or rule names", name))
			continue
		}
		pin := Pin(spec)
		for _, uid := range spec.UIDs {
			if uid < 0 || uid > 1<<32-1 {
				errs = append(errs, fmt.Errorf("daemons: %s: uid %d out of range", name, uid))
			}
		}
		for _, exe := range spec.Exes {
			if !filepath.IsAbs(exe) {
				errs = append(errs, fmt.Errorf("daemons: %s: exe %q is not an absolute path", name, exe))
			}
		}
		for _, list := range [][]string{spec.Units, spec.Exes, spec.Comms} {
			for _, v := range list {
				if _, err := field(name, v); err != nil || v == "" {
					errs = append(errs, fmt.Errorf("daemons: %s: %q is empty or has a control character", name, v))
				}
			}
		}
		if len(spec.UIDs)+len(spec.Units)+len(spec.Exes)+len(spec.Comms) == 0 {
			errs = append(errs, fmt.Errorf("daemons: %s: pins nothing (give uids, units, exes or comms)", name))
		}
		cfg.Pins[name] = pin
	}
	if len(errs) > 0 {
		return FileConfig{}, errors.Join(errs...)
	}
	return cfg, nil
}
