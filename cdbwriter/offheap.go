package cdbwriter

import (
	"reflect"
	"unsafe"
)

// offHeap holds a table's large arrays (slots, index, expiry heap, user
// names) outside the Go heap. They hold no pointers, so the garbage
// collector has nothing to scan in them, but on its heap they would still
// count towards its goal: with GOGC=50 a heap of 100 MiB of grants may grow
// to 150 MiB before a collection, and a million grants with long names
// would not fit in 200 MB. Outside it they cost their own size, pages are
// resident only once written, and a freed array goes back to the system at
// once instead of at the next collection. A table's arrays are freed
// together when it becomes unreachable (see NewTable).
type offHeap struct {
	live map[uintptr][]byte // each mapping by its first byte's address
}

func newOffHeap() *offHeap { return &offHeap{live: make(map[uintptr][]byte)} }

// offHeapSlice returns a zeroed slice of n Ts outside the Go heap. If the
// system refuses the mapping the slice comes from the Go heap, as any
// other allocation would. So does a slice of a type that holds pointers
// (a string, a netip.Addr with its zone handle): the garbage collector
// does not scan mapped memory, so what such a pointer refers to would be
// freed under it.
func offHeapSlice[T any](o *offHeap, n int) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if n <= 0 || size/n != int(unsafe.Sizeof(zero)) || size == 0 || hasPointers(reflect.TypeFor[T]()) {
		return make([]T, n) // n == 0, make's own overflow error, or not for mapping
	}
	b, ok := mapMemory(size)
	if !ok {
		return make([]T, n)
	}
	o.live[uintptr(unsafe.Pointer(unsafe.SliceData(b)))] = b
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// offHeapFree returns s's memory, if offHeapSlice mapped it; a slice from
// the Go heap is left to the garbage collector. s must not be used after.
func offHeapFree[T any](o *offHeap, s []T) {
	if cap(s) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s[:1])))
	if b, ok := o.live[p]; ok {
		delete(o.live, p)
		unmapMemory(b)
	}
}

// freeAll returns every mapping; the table that owned them is gone.
func (o *offHeap) freeAll() {
	for p, b := range o.live {
		delete(o.live, p)
		unmapMemory(b)
	}
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
