package postfix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Mynetworks is what -mynetworks resolved to, with what was skipped.
type Mynetworks struct {
	Prefixes []netip.Prefix
	Source   string   // "postconf", "flag", "none", "postconf not installed"
	Ignored  []string // entries that are not networks (type:table, !negation)
}

// ResolveMynetworks turns -mynetworks (auto, none, or CIDRs) into networks
// never to grant: an address Postfix already trusts gains nothing from a
// grant, and a grant for it would only hide a misconfiguration. auto asks
// postconf, in configDir when set.
func ResolveMynetworks(ctx context.Context, mode, configDir string) (Mynetworks, error) {
	switch mode {
	case "none":
		return Mynetworks{Source: "none"}, nil
	case "auto":
	default:
		p, err := ParsePrefixes(mode)
		return Mynetworks{Prefixes: p, Source: "flag"}, err
	}
	pc, err := newPostconf(configDir)
	switch {
	case errors.Is(err, errNoPostconf) && configDir == "":
		return Mynetworks{Source: "postconf not installed"}, nil
	case errors.Is(err, errNoPostconf):
		return Mynetworks{}, fmt.Errorf("-postfix-config %s given but postconf is not installed", configDir)
	case err != nil:
		return Mynetworks{}, err
	}
	out, err := pc.run(ctx, "-x", "-h", "mynetworks")
	if err != nil {
		return Mynetworks{}, fmt.Errorf("%w (use -mynetworks none or a CIDR list to skip postconf)", err)
	}
	res := Mynetworks{Source: "postconf"}
	if err := res.add(out, 0); err != nil {
		return Mynetworks{}, fmt.Errorf("postconf mynetworks: %w", err)
	}
	return res, nil
}

// parseMynetworks reads a mynetworks value as Postfix does (see add).
func parseMynetworks(value string) (Mynetworks, error) {
	var res Mynetworks
	err := res.add(value, 0)
	return res, err
}

// add reads a mynetworks value: CIDRs, bare addresses, [v6]/len,
// /file/name entries (read like Postfix does), type:table lookups (ignored:
// relaygate cannot enumerate them) and !negations (ignored, which only makes
// relaygate exclude more, never grant more).
func (res *Mynetworks) add(value string, depth int) error {
	for _, f := range listFields(value) {
		switch {
		case strings.HasPrefix(f, "!"):
			res.Ignored = append(res.Ignored, f)
		case strings.HasPrefix(f, "/"):
			if depth > 4 {
				return fmt.Errorf("%s: files nested too deep", f)
			}
			if err := res.addFile(f, depth+1); err != nil {
				return err
			}
		default:
			p, err := ParsePrefix(f)
			if err == nil {
				res.Prefixes = append(res.Prefixes, p)
			} else if isTableRef(f) {
				res.Ignored = append(res.Ignored, f)
			} else {
				return err
			}
		}
	}
	return nil
}

func isTableRef(s string) bool {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.HasPrefix(s, "[") {
		return false
	}
	// "hash:/etc/postfix/network_table" versus an IPv6 address "2001:db8::/32".
	typ := s[:i]
	for _, c := range typ {
		if !(c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func (res *Mynetworks) addFile(path string, depth int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if err := res.add(line, depth); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
