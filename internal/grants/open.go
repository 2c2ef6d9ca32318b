package grants

import "runtime"

// EachOpen calls f for every grant with an open session, in no particular
// order, lending it as Each does: O(grants with open sessions), not
// O(table). f must not change the table. A fleet's holder uses it to
// refresh its open sessions on the other relaygates.
func (t *Table) EachOpen(f func(r *Record)) {
	defer runtime.KeepAlive(t)
	var r Record
	for i := range t.open {
		t.record(&r, i, t.at(i))
		f(&r)
	}
}
