//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package offheap

// Without mmap the arrays stay on the Go heap (Slice falls back to make).
func mapMemory(int) ([]byte, bool) { return nil, false }

func unmapMemory([]byte) {}
