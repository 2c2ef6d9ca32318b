// Package cdbwriter writes the grant table down: the cdb map Postfix reads
// with check_client_access, and the state file that carries grants across
// a restart. Its Service is the one goroutine that owns a grants.Table:
// it applies the pipeline's events to it, keeps the state file's journal
// within 100 ms of the table, publishes the map when the set of addresses
// changed (at most once per Config.Flush), and expires grants on time
// with no traffic at all.
//
// The grant model itself (who is granted until when, sessions, eviction,
// the table's memory layout) is package grants, which does no I/O and
// reads no clock. Data flows one way: cdbwriter imports grants, never the
// reverse. The state file lives here rather than beside the table because
// it is a file like the map: opened the same careful way, replaced the
// same atomic way, and written by the same goroutine between the same
// events; the table only lends its grants to it (grants.Table.Each,
// EachUnsaved, grants.Loader) and keeps the books of what changed since
// the last save.
//
// Where what is:
//
//	service.go     Service, Config: Start, applying events, tick, shutdown
//	run.go         Run, the owner goroutine, and the Clock it keeps time with
//	stats.go       Stats, the counters, described once as metric samples
//	publish.go     the Service's map writes: when, retries, what to log
//	mapfile.go     the map: Key, WriteMap, ReadMap
//	cdb.go         the cdb format, written in one pass (tinycdb's layout)
//	mapread.go     reading an existing map, damaged or not
//	carryover.go   at start, the map's addresses the state file lost
//	state.go       the state file's format, written
//	statedecode.go the state file's format, read fast
//	stateread.go   reading a state file, damaged or not
//	restore.go     at start, the state file into the table
//	journal.go     appending changes to the state file; durability
//	unpublished.go tombstones for removals the map still shows
//	files.go       opening existing files safely; replacing them atomically
//	lock*.go       one relaygate per map and state file
package cdbwriter
