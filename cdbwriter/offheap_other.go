//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cdbwriter

// Without mmap the arrays stay on the Go heap (offHeapSlice falls back to
// make).
func mapMemory(int) ([]byte, bool) { return nil, false }

func unmapMemory([]byte) {}
