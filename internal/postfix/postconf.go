// Package postfix is what relaygate knows about Postfix: how to ask its
// configuration (one postconf runner), which networks mynetworks trusts,
// the network lists Postfix writes, and the checks `relaygate check` runs
// on a setup.
package postfix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// errNoPostconf means postconf is not installed (or not in PATH).
var errNoPostconf = errors.New("postconf not found: Postfix is not installed here (or not in PATH)")

// postconfTimeout bounds one postconf run: it reads a few files, but a hung
// NFS mount or a broken dynamic map must not hang a start, a SIGHUP or a
// check.
const postconfTimeout = 10 * time.Second

// postconf runs Postfix's postconf against one configuration directory.
type postconf struct {
	path string
	dir  string // -c DIR, or "" for Postfix's default
}

// newPostconf finds postconf and, when dir is given, checks that it holds a
// main.cf. Without postconf the error wraps errNoPostconf.
func newPostconf(dir string) (postconf, error) {
	path, err := exec.LookPath("postconf")
	if err != nil {
		return postconf{}, errNoPostconf
	}
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "main.cf")); err != nil {
			return postconf{}, fmt.Errorf("-postfix-config %s: no main.cf there", dir)
		}
	}
	return postconf{path: path, dir: dir}, nil
}

// run runs postconf with args (after -c DIR) and returns its standard
// output; the error carries the command line and what postconf said.
func (p postconf) run(ctx context.Context, args ...string) (string, error) {
	if p.dir != "" {
		args = append([]string{"-c", p.dir}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, postconfTimeout)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, p.path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("postconf %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// params returns the expanded values ($name references and Postfix's
// compatibility-level defaults resolved, as smtpd sees them).
func (p postconf) params(ctx context.Context, names ...string) (map[string]string, error) {
	out, err := p.run(ctx, append([]string{"-x"}, names...)...)
	if err != nil {
		return nil, err
	}
	vals := make(map[string]string, len(names))
	for _, line := range strings.Split(out, "\n") {
		if name, val, ok := strings.Cut(line, " ="); ok {
			vals[strings.TrimSpace(name)] = strings.TrimSpace(val)
		}
	}
	return vals, nil
}

// editCommand is the postconf command line that sets name to value in the
// checked configuration.
func (p postconf) editCommand(name string, value []string) string {
	c := "postconf"
	if p.dir != "" {
		c += " -c " + p.dir
	}
	return fmt.Sprintf("%s -e '%s = %s'", c, name, strings.Join(value, ", "))
}
