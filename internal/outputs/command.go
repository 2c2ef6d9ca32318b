package outputs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// commandWaitDelay is how long run waits, once the program exited or its
// time is up (and its process group was killed), for its output to close
// before giving up on it: a process it started in the background may hold
// the output open for ever.
var commandWaitDelay = 2 * time.Second

// maxCommandOutput is how much of a program's output run keeps: the
// first this many bytes and the last this many. The rest is counted and
// dropped, so a program that prints without end costs no memory.
const maxCommandOutput = 16 << 10

// run runs argv (no shell) with stdin, and returns an error that says what
// the program printed when it fails: a non-zero exit, a kill when ctx is
// done, or (for programs that report failure only in words, as smtpctl
// does) output matching failWords.
//
// The program runs in a process group of its own, and ctx's end kills the
// whole group: what it started (sudo's smtpctl, a shell's children) dies
// with it, and run returns at most commandWaitDelay later whatever they
// did with the output.
func run(ctx context.Context, stdin io.Reader, argv []string, failWords ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	out := &capWriter{max: maxCommandOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = commandWaitDelay
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited, but something it started still held its output.
		killGroup(cmd)
		err = fmt.Errorf("exited, but a process it started kept its output open (killed after %v)", commandWaitDelay)
	}
	said := strings.TrimSpace(out.String())
	if err == nil {
		for _, w := range failWords {
			if strings.Contains(said, w) {
				err = errors.New(w)
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if len(said) > 512 {
			said = said[:512] + "…"
		}
		if said != "" {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, said)
		}
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// killGroup kills cmd's process group (its pid: Setpgid made it the
// leader).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// capWriter keeps the first and the last max bytes written to it.
type capWriter struct {
	max        int
	head, tail []byte
	dropped    int64
}

func (w *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	if room := w.max - len(w.head); room > 0 {
		take := min(room, len(p))
		w.head = append(w.head, p[:take]...)
		p = p[take:]
	}
	if len(p) > 0 {
		w.tail = append(w.tail, p...)
		if over := len(w.tail) - w.max; over > 0 {
			w.dropped += int64(over)
			w.tail = append(w.tail[:0], w.tail[over:]...)
		}
	}
	return n, nil
}

// String is what was kept: the head, and the tail after a mark if bytes
// were dropped between them.
func (w *capWriter) String() string {
	switch {
	case len(w.tail) == 0:
		return string(w.head)
	case w.dropped == 0:
		return string(w.head) + string(w.tail)
	}
	return fmt.Sprintf("%s\n[… %d bytes dropped …]\n%s", w.head, w.dropped, w.tail)
}
