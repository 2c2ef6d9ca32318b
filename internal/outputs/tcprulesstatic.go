package outputs

import "os"

// Changed reports, at each poll, whether -tcprules-static changed and
// then held still for a whole poll (siteRules).
func (o *tcpRules) Changed() bool { return o.site.changed() }

// useSiteRules takes a version of the static file that parsed: the
// first record of each key is the one tcprules keeps.
func (o *tcpRules) useSiteRules() {
	o.rules = make(map[string][]byte, len(o.site.rules))
	for _, r := range o.site.rules {
		if _, dup := o.rules[string(r.key)]; !dup {
			o.rules[string(r.key)] = r.data
		}
	}
}

func loadTCPRulesStatic(path string) ([]byte, error) { return os.ReadFile(path) }
