package cdbwriter

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The map and the state file are read the same careful way at start
// (openExisting: an existing file that is not a readable regular file
// stops the start before anything is written) and replaced the same
// atomic way (writeAtomic: a temporary file, synced, renamed over the
// old one, the directory synced).

// FileError is a map or state file that exists but cannot be used at all:
// unreadable, or not a regular file. relaygate does not start over it, so
// it never replaces a map or state it could not read.
type FileError struct {
	What    string // "map" or "state file"
	Path    string
	Problem string
	Fix     string
	Err     error
}

func (e *FileError) Error() string {
	s := e.What + " " + e.Path + " " + e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s + " — fix: " + e.Fix
}

func (e *FileError) Unwrap() error { return e.Err }

// openFunc is os.OpenFile; tests replace it to make a file unreadable to
// root.
type openFunc func(name string, flag int, perm os.FileMode) (*os.File, error)

// openExisting opens an existing map or state file for reading: nil and no
// error if there is none. It follows symlinks but accepts only a regular
// file, checked on the opened descriptor; O_NONBLOCK keeps a FIFO from
// hanging the open. fix says how to make an unreadable file usable.
func openExisting(open openFunc, what, path, fix string) (*os.File, error) {
	f, err := open(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENXIO) {
			return nil, &FileError{What: what, Path: path, Problem: "is not a regular file", Err: err,
				Fix: "point relaygate at a regular file, or move what is at " + path + " away"}
		}
		return nil, &FileError{What: what, Path: path, Problem: "exists but cannot be opened", Err: err, Fix: fix}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &FileError{What: what, Path: path, Problem: "exists but cannot be examined", Err: err, Fix: fix}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &FileError{What: what, Path: path, Problem: "is a " + fileKind(fi.Mode()) + ", not a regular file",
			Fix: "point relaygate at a regular file, or move what is at " + path + " away"}
	}
	return f, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// tempPrefix marks relaygate's temporary files, so a restart can remove the
// ones a crash left behind without touching anything else in the directory.
const tempPrefix = ".relaygate-tmp-"

// writeAtomic creates path's new content through write, then renames it into
// place. On any error the old file is left untouched and the temporary file
// removed.
func writeAtomic(path string, mode os.FileMode, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err // an *os.PathError that names the temporary file
	}
	// CreateTemp makes the file 0600; postmap -q and proxymap read the map
	// as non-root users.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable; without this a crash can bring back
	// the old map, or none.
	d, err := os.Open(dir)
	if err != nil {
		return nil // the new file is in place; only durability is unknown
	}
	defer d.Close()
	if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, serr)
	}
	return nil
}

// removeStaleTemps deletes temporary files an earlier crash left next to
// path, and returns how many it removed.
func removeStaleTemps(path string) (int, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	prefix := tempPrefix + filepath.Base(path) + "-"
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// bufferedFile adds buffering to a temp file for line-oriented writers.
func bufferedFile(f *os.File, fill func(w *bufio.Writer) error) error {
	w := bufio.NewWriterSize(f, 64*1024)
	if err := fill(w); err != nil {
		return err
	}
	return w.Flush()
}
