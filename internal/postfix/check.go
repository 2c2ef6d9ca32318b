package postfix

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Finding is one result of `relaygate check`: a passed check, a problem
// with the command or setting that fixes it, or a note: something that
// works as configured but that the operator should know (what a local user
// can still do, say).
type Finding struct {
	ID      string // stable name, for tests and scripts: "map-dir", "454-trap", …
	Problem bool
	Note    bool // not a problem; printed "note:"
	Msg     string
	Fix     string
}

func (f Finding) String() string {
	switch {
	case f.Problem:
		return "PROBLEM: " + f.Msg + " — fix: " + f.Fix
	case f.Note:
		return "note: " + f.Msg
	}
	return "ok: " + f.Msg
}

// CheckOptions is what `relaygate check` is told.
type CheckOptions struct {
	MapPath       string // absolute, with .cdb
	PostfixConfig string // postconf -c DIR; empty for Postfix's default
	RunAs         string // user relaygate will run as; empty: the current user
}

// Check reports, each with a fix, the setup mistakes that make
// POP-before-SMTP silently not work: a map relaygate cannot write, a map
// Postfix does not read or reads too late, no cdb support, and a mynetworks
// so wide that relaying needs no login at all.
func Check(ctx context.Context, o CheckOptions) []Finding {
	out := checkMapDir(o)
	pc, err := newPostconf(o.PostfixConfig)
	if err != nil {
		return append(out, Finding{ID: "postconf", Problem: true,
			Msg: err.Error(),
			Fix: "install Postfix and cdb support (apt-get install postfix postfix-cdb), or pass -postfix-config DIR"})
	}
	out = append(out, checkCDBSupport(ctx, pc))
	params, err := pc.params(ctx, "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "mynetworks")
	if err != nil {
		return append(out, Finding{ID: "postconf", Problem: true, Msg: err.Error(),
			Fix: "make postconf work (run it by hand to see why), or pass -postfix-config DIR"})
	}
	out = append(out, checkRestrictions(pc, o.MapPath, params["smtpd_relay_restrictions"], params["smtpd_recipient_restrictions"]))
	return append(out, checkMynetworks(params["mynetworks"])...)
}

// checkMapDir makes sure relaygate can create files next to the map: every
// publish writes a temporary file there and renames it over the map. A
// permission check alone would pass for root on a read-only mount, so it
// also writes and removes a file.
func checkMapDir(o CheckOptions) []Finding {
	dir := filepath.Dir(o.MapPath)
	fi, err := os.Stat(dir)
	if err != nil {
		return []Finding{{ID: "map-dir", Problem: true,
			Msg: fmt.Sprintf("map directory %s: %v", dir, cause(err)),
			Fix: fmt.Sprintf("mkdir -p %s and give it to the user relaygate runs as (chown relaygate %s; chmod 755 %s)", dir, dir, dir)}}
	}
	if !fi.IsDir() {
		return []Finding{{ID: "map-dir", Problem: true, Msg: dir + " is not a directory",
			Fix: "point -map into a directory relaygate owns, such as /var/lib/relaygate/pop-before-smtp.cdb"}}
	}
	var out []Finding
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
		out = append(out, Finding{ID: "map-dir", Problem: true,
			Msg: fmt.Sprintf("%s cannot create files in the map directory %s: %v", who, dir, cause(err)), Fix: fix})
	} else {
		name := f.Name()
		f.Close()
		os.Remove(name)
		msg := fmt.Sprintf("map directory %s is writable by %s", dir, who)
		if os.Geteuid() == 0 && o.RunAs == "" {
			msg += " (root bypasses permissions: pass -user to check the user relaygate will run as)"
		}
		out = append(out, Finding{ID: "map-dir", Msg: msg})
	}
	if o.RunAs != "" {
		out = append(out, checkDirWritableBy(dir, fi, o.RunAs))
	}
	return out
}

// checkDirWritableBy decides from the directory's owner and mode bits
// whether name may create files in it (ACLs are not consulted).
func checkDirWritableBy(dir string, fi os.FileInfo, name string) Finding {
	u, err := user.Lookup(name)
	if err != nil {
		return Finding{ID: "map-dir-user", Problem: true, Msg: fmt.Sprintf("user %s: %v", name, err),
			Fix: fmt.Sprintf("create the user (adduser --system --group %s) or name the right one with -user", name)}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Finding{ID: "map-dir-user", Msg: "cannot read the owner of " + dir + "; permissions for " + name + " not checked"}
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
		return Finding{ID: "map-dir-user", Problem: true,
			Msg: fmt.Sprintf("user %s cannot create files in the map directory %s (owner uid %s, gid %s, mode %04o)", name, dir, uid, gid, mode),
			Fix: fmt.Sprintf("chown %s %s && chmod 755 %s", name, dir, dir)}
	}
	return Finding{ID: "map-dir-user", Msg: fmt.Sprintf("user %s may create files in the map directory %s", name, dir)}
}

func checkCDBSupport(ctx context.Context, p postconf) Finding {
	out, err := p.run(ctx, "-m")
	if err != nil {
		return Finding{ID: "cdb", Problem: true, Msg: err.Error(), Fix: "make postconf -m work"}
	}
	for _, t := range strings.Fields(out) {
		if t == "cdb" {
			return Finding{ID: "cdb", Msg: "Postfix supports cdb maps"}
		}
	}
	return Finding{ID: "cdb", Problem: true, Msg: "Postfix has no cdb map support (postconf -m lists no cdb), so it cannot open the map",
		Fix: "apt-get install postfix-cdb (other systems: a Postfix built with CDB)"}
}

// cause drops the path an *os.PathError repeats, since the message names
// the directory already.
func cause(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}

// Networks wider than these let a whole ISP or the Internet relay without
// any login, which makes POP-before-SMTP pointless (and relaygate never
// grants inside mynetworks).
const (
	wideIPv4Bits = 16
	wideIPv6Bits = 48
)

func checkMynetworks(value string) []Finding {
	res, err := parseMynetworks(value)
	if err != nil {
		return []Finding{{ID: "mynetworks", Problem: true, Msg: fmt.Sprintf("mynetworks %q: %v", value, err),
			Fix: "correct mynetworks (postconf mynetworks shows it)"}}
	}
	var out []Finding
	for _, p := range res.Prefixes {
		if p.Addr().IsLoopback() {
			continue // 127.0.0.0/8 and ::1: the machine itself
		}
		limit := wideIPv6Bits
		if p.Addr().Is4() {
			limit = wideIPv4Bits
		}
		if p.Bits() < limit {
			out = append(out, Finding{ID: "mynetworks", Problem: true,
				Msg: fmt.Sprintf("mynetworks includes %s, wider than /%d: every host there may relay without logging in, and relaygate never grants inside mynetworks", p, limit),
				Fix: "narrow mynetworks to the hosts that really submit mail unauthenticated, e.g. postconf -e 'mynetworks = 127.0.0.0/8 [::1]/128'"})
		}
	}
	if len(out) == 0 {
		msg := fmt.Sprintf("mynetworks (%s) is narrow", strings.Join(listFields(value), " "))
		if slices.ContainsFunc(res.Prefixes, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr("127.0.0.1")) }) {
			msg += "; it holds 127.0.0.0/8, so relaygate's -mynetworks auto never grants loopback (tests from localhost need -mynetworks none)"
		}
		out = append(out, Finding{ID: "mynetworks", Msg: msg})
	}
	if len(res.Ignored) > 0 {
		out = append(out, Finding{ID: "mynetworks-tables",
			Msg: fmt.Sprintf("mynetworks entries not checked (tables and negations): %s", strings.Join(res.Ignored, " "))})
	}
	return out
}
