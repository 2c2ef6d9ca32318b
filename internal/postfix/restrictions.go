package postfix

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// rejectsUnauth reports whether a restriction ends the relay decision for
// every client that got this far without a permit: anything after it is
// never consulted for a relay attempt.
func rejectsUnauth(token string) bool {
	switch token {
	case "reject_unauth_destination", "defer_unauth_destination", "reject", "defer":
		return true
	}
	return false
}

// mapRef is how Postfix names the map: cdb: and the path without ".cdb".
func mapRef(mapPath string) string { return "cdb:" + strings.TrimSuffix(mapPath, ".cdb") }

// findMapRef returns the index of "check_client_access" followed by the
// map, or -1; others lists the cdb tables consulted with
// check_client_access instead, for a hint that -map and main.cf disagree.
func findMapRef(tokens []string, mapPath string) (at int, others []string) {
	want := filepath.Clean(strings.TrimSuffix(mapPath, ".cdb"))
	for i := 0; i+1 < len(tokens); i++ {
		if tokens[i] != "check_client_access" {
			continue
		}
		table := strings.TrimPrefix(tokens[i+1], "proxy:")
		if path, ok := strings.CutPrefix(table, "cdb:"); ok {
			if filepath.Clean(path) == want {
				return i, nil
			}
			others = append(others, table)
		}
	}
	return -1, others
}

func firstReject(tokens []string) int {
	return slices.IndexFunc(tokens, rejectsUnauth)
}

// withMapBefore returns tokens with the map's check_client_access moved (or
// added) just before index at.
func withMapBefore(tokens []string, at int, mapPath string) []string {
	out := make([]string, 0, len(tokens)+1)
	for i := 0; i < len(tokens); i++ {
		if i == at {
			out = append(out, "check_client_access "+mapRef(mapPath))
		}
		if tokens[i] == "check_client_access" && i+1 < len(tokens) {
			if ref, _ := findMapRef(tokens[i:i+2], mapPath); ref == 0 {
				i++
				continue
			}
			out = append(out, tokens[i]+" "+tokens[i+1])
			i++
			continue
		}
		out = append(out, tokens[i])
	}
	return out
}

// checkRestrictions decides whether Postfix consults the map before it
// refuses to relay. Postfix ≥ 2.10 runs smtpd_relay_restrictions first: if
// that list rejects or defers an unauthorised destination before it reaches
// the map, the client gets "454 Relay access denied" whatever the
// recipient restrictions say (Debian's default is exactly that trap).
func checkRestrictions(p postconf, mapPath, relayValue, rcptValue string) Finding {
	ref := mapRef(mapPath)
	relay, rcpt := listFields(relayValue), listFields(rcptValue)
	relayRef, relayOthers := findMapRef(relay, mapPath)
	rcptRef, rcptOthers := findMapRef(rcpt, mapPath)
	relayRej, rcptRej := firstReject(relay), firstReject(rcpt)
	hint := ""
	if others := append(relayOthers, rcptOthers...); len(others) > 0 {
		hint = fmt.Sprintf(" (it consults %s: is that the -map you run relaygate with?)", strings.Join(others, ", "))
	}
	switch {
	case relayRef >= 0 && (relayRej < 0 || relayRef < relayRej):
		return Finding{ID: "restrictions", Msg: fmt.Sprintf("smtpd_relay_restrictions consults %s before refusing to relay", ref)}
	case relayRef >= 0:
		return Finding{ID: "after-reject", Problem: true,
			Msg: fmt.Sprintf("smtpd_relay_restrictions consults %s only after %s, which refuses first", ref, relay[relayRej]),
			Fix: p.editCommand("smtpd_relay_restrictions", withMapBefore(relay, relayRej, mapPath))}
	case relayRej >= 0 && rcptRef >= 0:
		return Finding{ID: "454-trap", Problem: true,
			Msg: fmt.Sprintf("smtpd_relay_restrictions (%s) ends in %s and runs before smtpd_recipient_restrictions, so clients get \"454 Relay access denied\" before %s is consulted",
				strings.Join(relay, " "), relay[relayRej], ref),
			Fix: p.editCommand("smtpd_relay_restrictions", withMapBefore(relay, relayRej, mapPath)) + " (or set it empty: the recipient restrictions then decide)"}
	case relayRej >= 0:
		return Finding{ID: "not-referenced", Problem: true,
			Msg: fmt.Sprintf("Postfix does not consult %s in smtpd_relay_restrictions or smtpd_recipient_restrictions%s", ref, hint),
			Fix: p.editCommand("smtpd_relay_restrictions", withMapBefore(relay, relayRej, mapPath))}
	case rcptRef >= 0 && (rcptRej < 0 || rcptRef < rcptRej):
		return Finding{ID: "restrictions", Msg: fmt.Sprintf("smtpd_recipient_restrictions consults %s before refusing to relay", ref)}
	case rcptRef >= 0:
		return Finding{ID: "after-reject", Problem: true,
			Msg: fmt.Sprintf("smtpd_recipient_restrictions consults %s only after %s, which refuses first", ref, rcpt[rcptRej]),
			Fix: p.editCommand("smtpd_recipient_restrictions", withMapBefore(rcpt, rcptRej, mapPath))}
	}
	var fixed []string
	switch {
	case rcptRej >= 0:
		fixed = withMapBefore(rcpt, rcptRej, mapPath)
	case len(rcpt) == 0:
		fixed = []string{"permit_mynetworks", "permit_sasl_authenticated", "check_client_access " + ref, "reject_unauth_destination"}
	default:
		fixed = append(slices.Clone(rcpt), "check_client_access "+ref, "reject_unauth_destination")
	}
	return Finding{ID: "not-referenced", Problem: true,
		Msg: fmt.Sprintf("Postfix does not consult %s in smtpd_relay_restrictions or smtpd_recipient_restrictions%s", ref, hint),
		Fix: p.editCommand("smtpd_recipient_restrictions", fixed)}
}
