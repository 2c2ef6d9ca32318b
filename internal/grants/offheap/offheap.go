// Package offheap keeps large arrays without pointers outside the Go heap,
// in anonymous memory mappings: the grant table's slots, index, expiry heap
// and user names, and the map writer's per-publish record arrays.
//
// Such arrays hold nothing the garbage collector needs to scan, but on its
// heap they would still count towards its goal: with GOGC=50 a heap of 100
// MiB of grants may grow to 150 MiB before a collection, and a million
// grants with long names would not fit in 200 MB. Outside it they cost
// their own size, pages are resident only once written, and a freed array
// goes back to the system at once instead of at the next collection.
//
// The collector does not see mapped memory, nor does the race detector:
// only pointer-free types are ever mapped (checked with reflect), and a
// slice must not be used after it is freed.
package offheap

import (
	"reflect"
	"unsafe"
)

// Memory is a set of mappings freed together (FreeAll), such as one
// table's arrays. It is not safe for concurrent use.
type Memory struct {
	live map[uintptr][]byte // each mapping by its first byte's address
}

// New returns an empty set of mappings.
func New() *Memory { return &Memory{live: make(map[uintptr][]byte)} }

// Slice returns a zeroed slice of n Ts outside the Go heap. If the system
// refuses the mapping the slice comes from the Go heap, as any other
// allocation would. So does a slice of a type that holds pointers (a
// string, a netip.Addr with its zone handle): the garbage collector does
// not scan mapped memory, so what such a pointer refers to would be freed
// under it.
func Slice[T any](m *Memory, n int) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if n <= 0 || size/n != int(unsafe.Sizeof(zero)) || size == 0 || hasPointers(reflect.TypeFor[T]()) {
		return make([]T, n) // n == 0, make's own overflow error, or not for mapping
	}
	b, ok := mapMemory(size)
	if !ok {
		return make([]T, n)
	}
	m.live[uintptr(unsafe.Pointer(unsafe.SliceData(b)))] = b
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Free returns s's memory, if Slice mapped it in m; a slice from the Go
// heap is left to the garbage collector. s must not be used after.
func Free[T any](m *Memory, s []T) {
	if cap(s) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s[:1])))
	if b, ok := m.live[p]; ok {
		delete(m.live, p)
		unmapMemory(b)
	}
}

// Owns reports whether s (its whole capacity) is one of m's mappings, not
// Go memory.
func Owns[T any](m *Memory, s []T) bool {
	if cap(s) == 0 {
		return false
	}
	_, ok := m.live[uintptr(unsafe.Pointer(unsafe.SliceData(s[:1])))]
	return ok
}

// FreeAll returns every mapping; whatever used them is gone.
func (m *Memory) FreeAll() {
	for p, b := range m.live {
		delete(m.live, p)
		unmapMemory(b)
	}
}

// Mappings is how many mappings m holds.
func (m *Memory) Mappings() int { return len(m.live) }

// Bytes is the size of m's mappings (pages are resident only once written).
func (m *Memory) Bytes() int {
	n := 0
	for _, b := range m.live {
		n += len(b)
	}
	return n
}

// hasPointers reports whether a value of type t holds anything the garbage
// collector follows. Unknown kinds count as pointers.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}
