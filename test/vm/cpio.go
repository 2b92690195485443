package vm

import (
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// The kernel unpacks "newc" cpio archives (see the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst). Writing them here, instead of
// running cpio(1), lets the harness add device nodes without root and keeps the archive's
// contents deterministic.

const (
	cpioModeDir     = 0o040000
	cpioModeFile    = 0o100000
	cpioModeSymlink = 0o120000
	cpioModeCharDev = 0o020000
)

// entry is one node of an in-memory guest file tree.
type entry struct {
	mode uint32 // type bits and permissions, as in stat(2)
	data []byte // file content, or the symlink target
	// devMajor and devMinor are set for device nodes.
	devMajor, devMinor uint32
}

// tree is an in-memory guest file system: absolute, cleaned paths without the leading slash
// ("usr/bin/ip") mapped to their nodes. Parent directories are created on demand.
type tree struct {
	entries map[string]*entry
}

func newTree() *tree {
	return &tree{entries: map[string]*entry{}}
}

// resolveDir follows symlinks among the directory components of p inside the tree, so that a
// file added as /bin/x lands in usr/bin when the tree holds bin -> usr/bin.
func (t *tree) resolveDir(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	parts := strings.Split(p, "/")
	resolved := ""
	for hops, i := 0, 0; i < len(parts); i++ {
		next := joinRel(resolved, parts[i])
		e, ok := t.entries[next]
		if ok && e.mode&0o170000 == cpioModeSymlink && hops < 40 {
			hops++
			target := string(e.data)
			if strings.HasPrefix(target, "/") {
				resolved = t.resolveDir(target)
			} else {
				resolved = t.resolveDir(joinRel(resolved, target))
			}
			continue
		}
		resolved = next
	}
	return resolved
}

// path returns where p lands in the tree once directory symlinks are followed.
func (t *tree) path(p string) string {
	p = strings.Trim(p, "/")
	dir, base := "", p
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	return joinRel(t.resolveDir(dir), base)
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// mkdirAll creates p and its parents as directories, following existing symlinks.
func (t *tree) mkdirAll(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	dir := ""
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir = t.mkdirAll(p[:i])
		p = p[i+1:]
	}
	full := joinRel(dir, p)
	if e, ok := t.entries[full]; ok {
		if e.mode&0o170000 == cpioModeSymlink {
			return t.mkdirAll(t.resolveDir(full))
		}
		return full
	}
	t.entries[full] = &entry{mode: cpioModeDir | 0o755}
	return full
}

// put adds a node at p, replacing whatever was there.
func (t *tree) put(p string, e *entry) string {
	p = strings.Trim(p, "/")
	dir, base := "", p
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	full := joinRel(t.mkdirAll(dir), base)
	t.entries[full] = e
	return full
}

// exists reports whether p (after following directory symlinks) is in the tree.
func (t *tree) exists(p string) bool {
	_, ok := t.entries[t.path(p)]
	return ok
}

func (t *tree) addFile(p string, data []byte, perm fs.FileMode) string {
	return t.put(p, &entry{mode: cpioModeFile | uint32(perm.Perm()), data: data})
}

func (t *tree) addSymlink(p, target string) string {
	return t.put(p, &entry{mode: cpioModeSymlink | 0o777, data: []byte(target)})
}

func (t *tree) addCharDev(p string, major, minor uint32) string {
	return t.put(p, &entry{mode: cpioModeCharDev | 0o600, devMajor: major, devMinor: minor})
}

// writeCPIO writes the tree as one newc archive, parents before children, ending with the
// TRAILER!!! record. Archives written this way can be concatenated: the kernel unpacks them in
// order and later ones override earlier ones.
func (t *tree) writeCPIO(w io.Writer) error {
	names := make([]string, 0, len(t.entries))
	for name := range t.entries {
		names = append(names, name)
	}
	sort.Strings(names) // a parent sorts before its children
	ino := uint32(1)
	for _, name := range names {
		if err := writeCPIORecord(w, ino, name, t.entries[name]); err != nil {
			return fmt.Errorf("cpio record %s: %w", name, err)
		}
		ino++
	}
	return writeCPIORecord(w, 0, "TRAILER!!!", &entry{})
}

func writeCPIORecord(w io.Writer, ino uint32, name string, e *entry) error {
	nlink := uint32(1)
	if e.mode&0o170000 == cpioModeDir {
		nlink = 2
	}
	header := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.devMajor, e.devMinor, len(name)+1, 0)
	var buf []byte
	buf = append(buf, header...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf, len(buf))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if len(e.data) > 0 {
		if _, err := w.Write(e.data); err != nil {
			return err
		}
		if n := (4 - len(e.data)%4) % 4; n > 0 {
			if _, err := w.Write(make([]byte, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

func pad4(buf []byte, n int) []byte {
	for ; n%4 != 0; n++ {
		buf = append(buf, 0)
	}
	return buf
}
