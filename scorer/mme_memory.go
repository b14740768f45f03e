package scorer

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"unsafe"
)

// HeapBytes is the memory the model keeps while it is loaded: its compiled
// form (for tree ensembles the same count ModelLimits.MaxHeapBytes bounds,
// or the arrays' capacity when that is larger) plus its names. The
// multi-model server's memory budget is a sum of these.
func (m *Model) HeapBytes() int64 {
	n := int64(unsafe.Sizeof(*m))
	for _, s := range m.info.Features {
		n += int64(unsafe.Sizeof(s)) + int64(len(s))
	}
	for _, s := range m.info.FeatureTypes {
		n += int64(unsafe.Sizeof(s)) + int64(len(s))
	}
	if r, ok := m.impl.(interface{ residentBytes() int64 }); ok {
		return n + r.residentBytes()
	}
	return n + estimatedBytes(m.info)
}

// estimatedBytes bounds, from its shape, a model family that does not count
// its own memory: every tree complete at the deepest tree's depth (more than
// any layout keeps), or a weight per feature and output.
func estimatedBytes(info ModelInfo) int64 {
	if info.Trees > 0 {
		return int64(info.TotalTrees) * (completeTreeBytes(min(info.MaxDepth, maxCompleteDepth)) + int64(unsafe.Sizeof(ftree{})))
	}
	return int64(len(info.Features)+1) * int64(max(info.Outputs, 1)) * 16
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
		return limit / defaultMemoryShare, fmt.Sprintf("half of the cgroup memory limit of %d bytes (%s)", limit, where)
	}
	if haveTotal {
		return total / defaultMemoryShare, fmt.Sprintf("half of the machine's memory of %d bytes (/proc/meminfo MemTotal; no lower cgroup limit)", total)
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
