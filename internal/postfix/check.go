package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
)

// finding is one result of `relaygate check`: a passed check, or a problem
// with the command or setting that fixes it.
type finding struct {
	id      string // stable name, for tests and scripts: "map-dir", "454-trap", …
	problem bool
	msg     string
	fix     string
}

func (f finding) String() string {
	if !f.problem {
		return "ok: " + f.msg
	}
	return "PROBLEM: " + f.msg + " — fix: " + f.fix
}

// checkOptions is what `relaygate check` is told.
type checkOptions struct {
	mapPath       string // with .cdb
	postfixConfig string // postconf -c DIR; empty for Postfix's default
	runAs         string // user relaygate will run as; empty: the current user
}

// checkCmd reports, each with a fix, the setup mistakes that make
// POP-before-SMTP silently not work: a map relaygate cannot write, a map
// Postfix does not read or reads too late, no cdb support, and a mynetworks
// so wide that relaying needs no login at all.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o checkOptions
	fs.StringVar(&o.mapPath, "map", defaultMap, "the cdb map `file` relaygate serve -map will write")
	fs.StringVar(&o.postfixConfig, "postfix-config", "", "Postfix configuration `directory` to check (postconf -c); default Postfix's own")
	fs.StringVar(&o.runAs, "user", "", "also check that this `user` (the one relaygate will run as) can write the map directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaygate check [-map FILE] [-postfix-config DIR] [-user NAME]")
		fmt.Fprintln(stderr, "Checks that relaygate can write the map and that Postfix consults it in time; prints a fix for each problem.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasSuffix(o.mapPath, ".cdb") {
		o.mapPath += ".cdb"
	}
	abs, err := filepath.Abs(o.mapPath)
	if err != nil {
		return fmt.Errorf("-map %s: %w", o.mapPath, err)
	}
	o.mapPath = abs
	findings := runChecks(ctx, o)
	problems := 0
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
		if f.problem {
			problems++
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) found", problems)
	}
	return nil
}

func runChecks(ctx context.Context, o checkOptions) []finding {
	out := checkMapDir(o)
	pc, err := newPostconf(o.postfixConfig)
	if err != nil {
		return append(out, finding{id: "postconf", problem: true,
			msg: err.Error(),
			fix: "install Postfix and cdb support (apt-get install postfix postfix-cdb), or pass -postfix-config DIR"})
	}
	out = append(out, checkCDBSupport(ctx, pc))
	params, err := pc.params(ctx, "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "mynetworks")
	if err != nil {
		return append(out, finding{id: "postconf", problem: true, msg: err.Error(),
			fix: "make postconf work (run it by hand to see why), or pass -postfix-config DIR"})
	}
	out = append(out, checkRestrictions(pc, o.mapPath, params["smtpd_relay_restrictions"], params["smtpd_recipient_restrictions"]))
	return append(out, checkMynetworks(params["mynetworks"])...)
}

// checkMapDir makes sure relaygate can create files next to the map: every
// publish writes a temporary file there and renames it over the map. A
// permission check alone would pass for root on a read-only mount, so it
// also writes and removes a file.
func checkMapDir(o checkOptions) []finding {
	dir := filepath.Dir(o.mapPath)
	fi, err := os.Stat(dir)
	if err != nil {
		return []finding{{id: "map-dir", problem: true,
			msg: fmt.Sprintf("map directory %s: %v", dir, cause(err)),
			fix: fmt.Sprintf("mkdir -p %s and give it to the user relaygate runs as (chown relaygate %s; chmod 755 %s)", dir, dir, dir)}}
	}
	if !fi.IsDir() {
		return []finding{{id: "map-dir", problem: true, msg: dir + " is not a directory",
			fix: "point -map into a directory relaygate owns, such as /var/lib/relaygate/pop-before-smtp.cdb"}}
	}
	var out []finding
	who := "the current user"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	f, err := os.CreateTemp(dir, ".relaygate-check-*")
	if err != nil {
		fix := fmt.Sprintf("let %s write %s (chown %s %s), or run relaygate as that directory's owner", who, dir, who, dir)
		if errors.Is(err, syscall.EROFS) {
			fix = "put the map on a writable file system (under systemd's ProtectSystem=strict, list its directory in ReadWritePaths= or use StateDirectory=)"
		}
		out = append(out, finding{id: "map-dir", problem: true,
			msg: fmt.Sprintf("%s cannot create files in the map directory %s: %v", who, dir, cause(err)), fix: fix})
	} else {
		name := f.Name()
		f.Close()
		os.Remove(name)
		msg := fmt.Sprintf("map directory %s is writable by %s", dir, who)
		if os.Geteuid() == 0 && o.runAs == "" {
			msg += " (root bypasses permissions: pass -user to check the user relaygate will run as)"
		}
		out = append(out, finding{id: "map-dir", msg: msg})
	}
	if o.runAs != "" {
		out = append(out, checkDirWritableBy(dir, fi, o.runAs))
	}
	return out
}

// checkDirWritableBy decides from the directory's owner and mode bits
// whether name may create files in it (ACLs are not consulted).
func checkDirWritableBy(dir string, fi os.FileInfo, name string) finding {
	u, err := user.Lookup(name)
	if err != nil {
		return finding{id: "map-dir-user", problem: true, msg: fmt.Sprintf("user %s: %v", name, err),
			fix: fmt.Sprintf("create the user (adduser --system --group %s) or name the right one with -user", name)}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return finding{id: "map-dir-user", msg: "cannot read the owner of " + dir + "; permissions for " + name + " not checked"}
	}
	mode := fi.Mode().Perm()
	uid, gid := fmt.Sprint(st.Uid), fmt.Sprint(st.Gid)
	groups, _ := u.GroupIds()
	inGroup := u.Gid == gid
	for _, g := range groups {
		inGroup = inGroup || g == gid
	}
	writable := u.Uid == "0" ||
		(u.Uid == uid && mode&0o300 == 0o300) ||
		(u.Uid != uid && inGroup && mode&0o030 == 0o030) ||
		(u.Uid != uid && !inGroup && mode&0o003 == 0o003)
	if !writable {
		return finding{id: "map-dir-user", problem: true,
			msg: fmt.Sprintf("user %s cannot create files in the map directory %s (owner uid %s, gid %s, mode %04o)", name, dir, uid, gid, mode),
			fix: fmt.Sprintf("chown %s %s && chmod 755 %s", name, dir, dir)}
	}
	return finding{id: "map-dir-user", msg: fmt.Sprintf("user %s may create files in the map directory %s", name, dir)}
}

// postconf runs Postfix's postconf against one configuration directory.
type postconf struct {
	path string
	dir  string // -c DIR, or "" for the default
}

func newPostconf(dir string) (postconf, error) {
	path, err := exec.LookPath("postconf")
	if err != nil {
		return postconf{}, errors.New("postconf not found: Postfix is not installed here (or not in PATH)")
	}
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "main.cf")); err != nil {
			return postconf{}, fmt.Errorf("-postfix-config %s: no main.cf there", dir)
		}
	}
	return postconf{path: path, dir: dir}, nil
}

func (p postconf) run(ctx context.Context, args ...string) (string, error) {
	if p.dir != "" {
		args = append([]string{"-c", p.dir}, args...)
	}
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

func checkCDBSupport(ctx context.Context, p postconf) finding {
	out, err := p.run(ctx, "-m")
	if err != nil {
		return finding{id: "cdb", problem: true, msg: err.Error(), fix: "make postconf -m work"}
	}
	for _, t := range strings.Fields(out) {
		if t == "cdb" {
			return finding{id: "cdb", msg: "Postfix supports cdb maps"}
		}
	}
	return finding{id: "cdb", problem: true, msg: "Postfix has no cdb map support (postconf -m lists no cdb), so it cannot open the map",
		fix: "apt-get install postfix-cdb (other systems: a Postfix built with CDB)"}
}

// cause drops the path an *os.PathError repeats, since the message names
// the directory already.
func cause(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}
