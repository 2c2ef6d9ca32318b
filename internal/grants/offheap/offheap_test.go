package offheap

import (
	"net/netip"
	"reflect"
	"testing"
	"unsafe"
)

// TestRefusesPointers: memory outside the Go heap is not scanned by the
// collector, so a pointer stored there does not keep its target alive. A
// netip.Addr is such a value (its zone is a unique.Handle), as are strings,
// slices and maps. Whatever type is asked for, Slice maps only pointer-free
// ones; the rest come from the Go heap.
func TestRefusesPointers(t *testing.T) {
	mem := New()
	defer mem.FreeAll()
	for name, s := range map[string]bool{
		"netip.Addr":   Owns(mem, Slice[netip.Addr](mem, 4096)),
		"string":       Owns(mem, Slice[string](mem, 4096)),
		"[]byte":       Owns(mem, Slice[[]byte](mem, 4096)),
		"*int":         Owns(mem, Slice[*int](mem, 4096)),
		"struct":       Owns(mem, Slice[struct{ a, b string }](mem, 4096)),
		"[2]any":       Owns(mem, Slice[[2]any](mem, 4096)),
		"map":          Owns(mem, Slice[map[int]int](mem, 4096)),
		"func":         Owns(mem, Slice[func()](mem, 4096)),
		"chan":         Owns(mem, Slice[chan int](mem, 4096)),
		"unsafe":       Owns(mem, Slice[unsafe.Pointer](mem, 4096)),
		"nested field": Owns(mem, Slice[struct{ a [3]struct{ b, c *byte } }](mem, 4096)),
	} {
		if s {
			t.Errorf("a slice of %s, which holds pointers, was mapped outside the Go heap", name)
		}
	}
	if mem.Mappings() != 0 {
		t.Errorf("%d mappings for types with pointers", mem.Mappings())
	}
}

// TestMapsPointerFree: pointer-free types are mapped where the system maps
// memory, and Free and FreeAll give each mapping back once.
func TestMapsPointerFree(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[int32](), reflect.TypeFor[byte](), reflect.TypeFor[[16]byte](),
		reflect.TypeFor[struct {
			a int64
			b [4]uint16
		}](),
	} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
	mem := New()
	a, b := Slice[int64](mem, 4096), Slice[byte](mem, 1<<20)
	if !Owns(mem, a) || !Owns(mem, b[:0]) {
		t.Skip("this system does not map memory; the arrays stay on the Go heap")
	}
	a[4095], b[1<<20-1] = 7, 7 // the whole length is usable
	if mem.Mappings() != 2 || mem.Bytes() != 8*4096+1<<20 {
		t.Fatalf("%d mappings of %d bytes, want 2 of %d", mem.Mappings(), mem.Bytes(), 8*4096+1<<20)
	}
	Free(mem, a)
	Free(mem, a) // a second time finds nothing to free
	Free(mem, make([]int64, 8))
	if mem.Mappings() != 1 || Owns(mem, a) {
		t.Fatalf("after Free: %d mappings", mem.Mappings())
	}
	mem.FreeAll()
	if mem.Mappings() != 0 || mem.Bytes() != 0 {
		t.Fatalf("after FreeAll: %d mappings", mem.Mappings())
	}
}
