// Package grants is relaygate's grant model: which client addresses may
// relay, until when, and why. A login grants its address for a grace
// period; a login with a session keeps it while the session is open; a
// logout never grants; excluded networks are never granted; a full table
// evicts its least recently logged-in grant. Event is what the pipeline
// asks of the model; Table holds the grants.
//
// The package does no I/O and reads no clock: every method takes the time
// from its caller, so tests drive it exactly. Writing the grants down is
// the cdbwriter package's job (the cdb map Postfix reads, and the state
// file that carries grants across a restart), and so is the goroutine
// that owns a Table and applies events to it (cdbwriter.Service): data
// flows one way, cdbwriter imports grants and never the reverse. What a
// writer needs beyond the model's own methods is lent to it without
// copying (Each, EachAddr, EachUnsaved, Loader), since it runs over every
// grant of a table of a million.
//
// Where the table keeps what:
//
//	table.go     Table, its slots and accessors; TableConfig and limits
//	policy.go    Login, Restore: the grant policy
//	sessions.go  open sessions, Logout, the per-address session bound
//	slots.go     taking and freeing slots; the eviction order
//	expiry.go    the expiry heap, Expire, NextExpiry
//	addrindex.go address → slot (open addressing)
//	intern.go    daemon and host names, interned
//	userarena.go user names, in an arena
//	unsaved.go   what changed since the state file was last saved
//	records.go   the grants lent to writers (Each, EachAddr)
//	load.go      Loader: a state file's lines straight into a table
//	offheap/     the arrays above, mapped outside the Go heap
package grants
