package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// mynetworksResult is what -mynetworks resolved to, with what was skipped.
type mynetworksResult struct {
	prefixes []netip.Prefix
	source   string   // "postconf", "flag", "none", "postconf not installed"
	ignored  []string // entries that are not networks (type:table, !negation)
}

// resolveMynetworks turns -mynetworks into networks never to grant: an
// address Postfix already trusts gains nothing from a grant, and a grant for
// it would only hide a misconfiguration.
func resolveMynetworks(ctx context.Context, mode, postfixConfig string) (mynetworksResult, error) {
	switch mode {
	case "none":
		return mynetworksResult{source: "none"}, nil
	case "auto":
	default:
		p, err := parsePrefixes(mode)
		return mynetworksResult{prefixes: p, source: "flag"}, err
	}
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		if postfixConfig != "" {
			return mynetworksResult{}, fmt.Errorf("-postfix-config %s given but postconf is not installed", postfixConfig)
		}
		return mynetworksResult{source: "postconf not installed"}, nil
	}
	args := []string{"-x", "-h"}
	if postfixConfig != "" {
		args = append(args, "-c", postfixConfig)
	}
	args = append(args, "mynetworks")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, postconf, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return mynetworksResult{}, fmt.Errorf("postconf %s: %w: %s (use -mynetworks none or a CIDR list to skip postconf)",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	res := mynetworksResult{source: "postconf"}
	if err := addMynetworks(&res, string(out), 0); err != nil {
		return mynetworksResult{}, fmt.Errorf("postconf mynetworks: %w", err)
	}
	return res, nil
}

// addMynetworks reads a mynetworks value: CIDRs, bare addresses, [v6]/len,
// /file/name entries (read like Postfix does), type:table lookups (ignored:
// relaygate cannot enumerate them) and !negations (ignored, which only makes
// relaygate exclude more, never grant more).
func addMynetworks(res *mynetworksResult, value string, depth int) error {
	for _, f := range strings.FieldsFunc(value, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		switch {
		case strings.HasPrefix(f, "!"):
			res.ignored = append(res.ignored, f)
		case strings.HasPrefix(f, "/"):
			if depth > 4 {
				return fmt.Errorf("%s: files nested too deep", f)
			}
			if err := addMynetworksFile(res, f, depth+1); err != nil {
				return err
			}
		default:
			p, err := parsePrefix(f)
			if err == nil {
				res.prefixes = append(res.prefixes, p)
			} else if isTableRef(f) {
				res.ignored = append(res.ignored, f)
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

func addMynetworksFile(res *mynetworksResult, path string, depth int) error {
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
		if err := addMynetworks(res, line, depth); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
