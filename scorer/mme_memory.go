package scorer

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"strconv"
	"strings"
	"unsafe"
)

// HeapBytes is the memory the model keeps while it is loaded: the larger
// of what its family counts (for tree ensembles, what
// ModelLimits.MaxHeapBytes bounds as the trees compile, or the arrays'
// capacity when growing them left more) and what a walk of every array,
// string and structure the model holds finds (each shared array once), so
// a family that counts nothing, or forgets an array, is still counted. The
// multi-model server's memory budget is a sum of these.
func (m *Model) HeapBytes() int64 {
	w := sizeWalker{seen: map[uintptr]bool{}, ptrs: map[reflect.Type]bool{}}
	n := int64(unsafe.Sizeof(*m)) + w.extra(reflect.ValueOf(m).Elem())
	if r, ok := m.impl.(interface{ residentBytes() int64 }); ok {
		names := int64(unsafe.Sizeof(*m)) + describedBytes(m.info)
		n = max(n, names+r.residentBytes())
	}
	return n
}

// describedBytes is the memory of the model's description: its feature names and types.
func describedBytes(info ModelInfo) int64 {
	w := sizeWalker{seen: map[uintptr]bool{}, ptrs: map[reflect.Type]bool{}}
	return w.extra(reflect.ValueOf(info))
}

// residentBytes is what the forest's limits accounting counted as it
// compiled the trees (heap), or what its node arrays hold when growing them
// left more capacity than that, plus the per-tree headers.
func (f *forest) residentBytes() int64 {
	arrays := int64(cap(f.nodes))*int64(unsafe.Sizeof(fnode{})) + int64(cap(f.leaf)+cap(f.mean)+cap(f.base))*4
	return max(f.heap, arrays) +
		int64(cap(f.trees))*int64(unsafe.Sizeof(ftree{})) +
		int64(cap(f.slow))*int64(unsafe.Sizeof(catTree{}))
}

// residentBytes is the linear model's weights and missing-value defaults.
func (l *linearModel) residentBytes() int64 {
	return int64(cap(l.weights)+cap(l.missing)) * 8
}

// sizeWalker sums the memory a value refers to beyond its own inline size.
// It reads unexported fields through reflect without calling anything, so
// every model family is counted without declaring its fields.
type sizeWalker struct {
	seen map[uintptr]bool      // arrays and objects already counted
	ptrs map[reflect.Type]bool // whether a type holds pointers, memoised
}

func (w *sizeWalker) extra(v reflect.Value) int64 {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !w.first(v.Pointer()) {
			return 0
		}
		return int64(v.Type().Elem().Size()) + w.extra(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer {
			return w.extra(e)
		}
		return int64(e.Type().Size()) + w.extra(e) // boxed value
	case reflect.Slice:
		if v.IsNil() || v.Cap() == 0 || !w.first(v.Pointer()) {
			return 0
		}
		n := int64(v.Cap()) * int64(v.Type().Elem().Size())
		if w.hasPointers(v.Type().Elem()) {
			for i := range v.Len() {
				n += w.extra(v.Index(i))
			}
		}
		return n
	case reflect.String:
		return int64(v.Len())
	case reflect.Struct:
		n := int64(0)
		for i := range v.NumField() {
			n += w.extra(v.Field(i))
		}
		return n
	case reflect.Array:
		n := int64(0)
		if w.hasPointers(v.Type().Elem()) {
			for i := range v.Len() {
				n += w.extra(v.Index(i))
			}
		}
		return n
	case reflect.Map:
		if v.IsNil() || !w.first(v.Pointer()) {
			return 0
		}
		// Entries and the buckets' overhead, roughly twice the pairs.
		n := int64(v.Len()) * 2 * int64(v.Type().Key().Size()+v.Type().Elem().Size())
		it := v.MapRange()
		for it.Next() {
			n += w.extra(it.Key()) + w.extra(it.Value())
		}
		return n
	}
	return 0 // numbers, bools, funcs, channels: inline or not the model's
}

func (w *sizeWalker) first(p uintptr) bool {
	if w.seen[p] {
		return false
	}
	w.seen[p] = true
	return true
}

func (w *sizeWalker) hasPointers(t reflect.Type) bool {
	if has, ok := w.ptrs[t]; ok {
		return has
	}
	has := false
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.String, reflect.Map:
		has = true
	case reflect.Struct:
		w.ptrs[t] = false // a recursive type refers to itself by pointer
		for i := range t.NumField() {
			has = has || w.hasPointers(t.Field(i).Type)
		}
	case reflect.Array:
		has = w.hasPointers(t.Elem())
	}
	w.ptrs[t] = has
	return has
}

// defaultMemoryShare is the part of the container's memory the loaded
// models may take by default (one half). The rest is headroom the models
// themselves cause: a garbage-collected heap grows to about twice its live
// size between collections (GOGC=100), a model being parsed holds its file
// and parse tree beside the compiled form, and each request in flight holds
// its body and response.
const defaultMemoryShare = 2

// fallbackMemoryBudget is the budget when neither a cgroup limit nor the
// machine's memory can be read.
const fallbackMemoryBudget = 1 << 30

// DefaultMemoryBudget is the memory budget of a multi-model server that is
// given none: half of the container's memory limit (cgroup v2 memory.max,
// the smallest along the process's cgroup path, or cgroup v1
// memory.limit_in_bytes) when there is one, else half of the machine's
// memory (MemTotal in /proc/meminfo), else 1 GiB. from says which, for the
// log.
func DefaultMemoryBudget() (budget int64, from string) {
	return memoryBudgetFrom(os.DirFS("/"))
}

func memoryBudgetFrom(root fs.FS) (int64, string) {
	total, haveTotal := memTotal(root)
	if limit, where, ok := cgroupLimit(root); ok && (!haveTotal || limit < total) {
		return max(limit/defaultMemoryShare, 1), fmt.Sprintf("half of the cgroup memory limit of %d bytes (%s)", limit, where)
	}
	if haveTotal {
		return max(total/defaultMemoryShare, 1), fmt.Sprintf("half of the machine's memory of %d bytes (/proc/meminfo MemTotal; no lower cgroup limit)", total)
	}
	return fallbackMemoryBudget, "1 GiB: no cgroup memory limit or /proc/meminfo found"
}

// unlimitedCgroup: cgroup v1 reports "no limit" as a number near 2^63
// rounded down to the page size.
const unlimitedCgroup = 1 << 60

// cgroupLimit returns the memory limit of the process's cgroup, if any.
func cgroupLimit(root fs.FS) (int64, string, bool) {
	v2, v1 := "/", "/"
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case containsWord(parts[1], "memory"):
				v1 = parts[2]
			}
		}
	}
	// v2: the limit in force is the smallest memory.max from the process's
	// cgroup up to the root of the mount (a container sees its own cgroup
	// as the root).
	best, where := int64(0), ""
	for p := path.Clean("/" + v2); ; p = path.Dir(p) {
		f := path.Join("sys/fs/cgroup", p, "memory.max")
		if v, ok := readLimit(root, f); ok && (best == 0 || v < best) {
			best, where = v, "/"+f
		}
		if p == "/" {
			break
		}
	}
	if best > 0 {
		return best, where, true
	}
	for _, p := range []string{path.Clean("/" + v1), "/"} {
		f := path.Join("sys/fs/cgroup/memory", p, "memory.limit_in_bytes")
		if v, ok := readLimit(root, f); ok {
			return v, "/" + f, true
		}
	}
	return 0, "", false
}

func containsWord(list, w string) bool {
	for _, s := range strings.Split(list, ",") {
		if s == w {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit file: a byte count, or "max" (v2)
// or a huge number (v1) for none.
func readLimit(root fs.FS, name string) (int64, bool) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= unlimitedCgroup {
		return 0, false
	}
	return v, true
}

// memTotal reads MemTotal (kB) from /proc/meminfo.
func memTotal(root fs.FS) (int64, bool) {
	b, err := fs.ReadFile(root, "proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}
