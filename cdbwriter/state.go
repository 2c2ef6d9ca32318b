package cdbwriter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// The state file is JSON lines: a header, then one grant per line. Lines are
// independent, so a truncated or damaged file still yields every grant that
// can be read instead of none.
const stateHeader = `{"relaygate_state":1}`

// SaveState atomically replaces the state file at path with grants.
func SaveState(path string, grants []Grant) error {
	err := writeAtomic(path, 0o600, func(f *os.File) error {
		return bufferedFile(f, func(w *bufio.Writer) error {
			w.WriteString(stateHeader)
			w.WriteByte('\n')
			enc := json.NewEncoder(w)
			for _, g := range grants {
				if err := enc.Encode(g); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	return nil
}

// StateDamage describes lines of a state file that could not be read.
type StateDamage struct {
	Path     string
	BadLines int
	FirstBad int // 1-based line number
}

func (d *StateDamage) Error() string {
	return fmt.Sprintf("state file %s: %d unreadable line(s), first at line %d", d.Path, d.BadLines, d.FirstBad)
}

// LoadState reads the grants in the state file at path. A missing file is no
// grants and no error. A damaged file returns the grants that could be read
// together with a *StateDamage error.
func LoadState(path string) ([]Grant, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	var (
		grants []Grant
		damage StateDamage
	)
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || (i == 0 && string(line) == stateHeader) {
			continue
		}
		var g Grant
		if err := json.Unmarshal(line, &g); err != nil || !g.Addr.IsValid() || g.Expires.IsZero() {
			damage.BadLines++
			if damage.FirstBad == 0 {
				damage.FirstBad = i + 1
			}
			continue
		}
		grants = append(grants, g)
	}
	if damage.BadLines > 0 {
		damage.Path = path
		return grants, &damage
	}
	return grants, nil
}
