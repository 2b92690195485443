package vm

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// KernelEnv names the environment variable that overrides where the kernel is looked for. It
// holds a directory laid out like an unpacked Debian linux-image package (boot/ and
// lib/modules/<release>/), as hack/vm-deps.sh leaves in .cache/vm/kernel.
const KernelEnv = "SWITCHYARD_VM_KERNEL"

// Kernel is an unpacked kernel package: the image to boot and its loadable modules.
type Kernel struct {
	// Dir is the root of the unpacked package.
	Dir string
	// Release is the kernel release, e.g. "6.1.0-56-amd64" (the name of lib/modules/<release>).
	Release string
	// Image is the file QEMU boots: the decompressed ELF vmlinux when present (it skips 2-3 s of
	// emulated decompression), otherwise the bzImage vmlinuz.
	Image string

	mu         sync.Mutex        // guards modinfo
	modulesDir string            // lib/modules/<release>, absolute
	byName     map[string]string // module name (with '_') -> path relative to modulesDir
	builtin    map[string]bool   // modules compiled into the image
	modinfo    map[string]modInfo
}

// modInfo is the part of a module's .modinfo section that decides load order.
type modInfo struct {
	depends  []string // hard dependencies, module names
	softPre  []string // softdep "pre:" names or aliases
	softPost []string // softdep "post:" names or aliases
	aliases  []string
}

// DefaultKernelDir returns $SWITCHYARD_VM_KERNEL when set, else .cache/vm/kernel under the
// root of the module that contains the working directory.
func DefaultKernelDir() (string, error) {
	if dir := os.Getenv(KernelEnv); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the kernel: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "vm", "kernel"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("finding the kernel: no go.mod above %s; set %s", wd, KernelEnv)
		}
	}
}

// LoadKernel reads an unpacked kernel package: the boot image and the module index. It does not
// read the modules themselves until they are needed.
func LoadKernel(dir string) (*Kernel, error) {
	modRoot := filepath.Join(dir, "lib", "modules")
	releases, err := os.ReadDir(modRoot)
	if err != nil {
		return nil, fmt.Errorf("kernel in %s (run hack/vm-deps.sh): %w", dir, err)
	}
	if len(releases) != 1 {
		return nil, fmt.Errorf("kernel in %s: want one release under lib/modules, found %d", dir, len(releases))
	}
	k := &Kernel{
		Dir:        dir,
		Release:    releases[0].Name(),
		modulesDir: filepath.Join(modRoot, releases[0].Name()),
		byName:     map[string]string{},
		builtin:    map[string]bool{},
		modinfo:    map[string]modInfo{},
	}
	for _, name := range []string{"vmlinux-" + k.Release, "vmlinuz-" + k.Release} {
		p := filepath.Join(dir, "boot", name)
		if _, err := os.Stat(p); err == nil {
			k.Image = p
			break
		}
	}
	if k.Image == "" {
		return nil, fmt.Errorf("kernel in %s: no boot/vmlinux-%s or boot/vmlinuz-%s", dir, k.Release, k.Release)
	}
	err = filepath.WalkDir(filepath.Join(k.modulesDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, err := filepath.Rel(k.modulesDir, p)
		if err != nil {
			return err
		}
		k.byName[moduleName(strings.TrimSuffix(d.Name(), ".ko"))] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing modules of %s: %w", k.Release, err)
	}
	if len(k.byName) == 0 {
		return nil, fmt.Errorf("kernel in %s: no plain .ko modules (compressed ones must be unpacked by hack/vm-deps.sh)", dir)
	}
	if builtin, err := os.ReadFile(filepath.Join(k.modulesDir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(builtin)) {
			k.builtin[moduleName(strings.TrimSuffix(path.Base(line), ".ko"))] = true
		}
	}
	return k, nil
}

// moduleName normalises a module name the way the kernel does: '-' and '_' are the same.
func moduleName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// Module is a loadable module chosen for the guest.
type Module struct {
	// Name is the module name, e.g. "ip_vs".
	Name string
	// Path is the file relative to lib/modules/<release>, e.g. "kernel/net/netfilter/ipvs/ip_vs.ko".
	Path string
	// Depends lists the modules it needs loaded first (hard dependencies only).
	Depends []string
}

// expandModules turns patterns (plain names or path.Match globs such as "ip_set_hash_*") into
// module names, in the order given. Built-in modules are dropped: they need no loading.
func (k *Kernel) expandModules(patterns []string) ([]string, error) {
	var names []string
	for _, pattern := range patterns {
		pattern = moduleName(pattern)
		if !strings.ContainsAny(pattern, "*?[") {
			names = append(names, pattern)
			continue
		}
		var matched []string
		for name := range k.byName {
			if ok, err := path.Match(pattern, name); err != nil {
				return nil, fmt.Errorf("module pattern %q: %w", pattern, err)
			} else if ok {
				matched = append(matched, name)
			}
		}
		if len(matched) == 0 {
			return nil, fmt.Errorf("module pattern %q matches no module of %s", pattern, k.Release)
		}
		sort.Strings(matched)
		names = append(names, matched...)
	}
	return names, nil
}

// ResolveModules returns the modules to insmod, in load order, so that the named modules (and
// globs like "ip_set_hash_*") load. The order comes from each module's .modinfo: depends= is
// a hard dependency, softdep= "pre:" entries load before and "post:" entries after. The .deb
// ships no modules.dep (depmod writes it at install time), hence the reading of .modinfo.
//
// Soft dependencies matter: libcrc32c only names crc32c as a softdep, and without
// crc32c_generic its insmod fails with a misleading "unknown symbol", and so does every module
// that depends on it (nf_conntrack, and with it all of IPVS).
func (k *Kernel) ResolveModules(patterns []string) ([]Module, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	names, err := k.expandModules(patterns)
	if err != nil {
		return nil, err
	}
	r := &resolver{kernel: k, state: map[string]int{}}
	var errs []error
	for _, name := range names {
		if err := r.visit(name, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r.order, nil
}

type resolver struct {
	kernel *Kernel
	state  map[string]int // 0 unvisited, 1 in progress, 2 done
	order  []Module
}

func (r *resolver) visit(name string, chain []string) error {
	name = moduleName(name)
	if r.kernel.builtin[name] {
		return nil
	}
	switch r.state[name] {
	case 1:
		return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), name)
	case 2:
		return nil
	}
	rel, ok := r.kernel.byName[name]
	if !ok {
		return fmt.Errorf("module %s not found in %s (wanted by %v)", name, r.kernel.Release, chain)
	}
	info, err := r.kernel.info(name)
	if err != nil {
		return err
	}
	r.state[name] = 1
	chain = append(chain, name)
	// Soft dependencies are best effort, as in modprobe: one that cannot be found is skipped.
	for _, soft := range info.softPre {
		if dep, ok := r.kernel.resolveAlias(soft); ok {
			if r.state[dep] != 1 {
				_ = r.visit(dep, chain)
			}
		}
	}
	for _, dep := range info.depends {
		if err := r.visit(dep, chain); err != nil {
			return err
		}
	}
	r.state[name] = 2
	r.order = append(r.order, Module{Name: name, Path: rel, Depends: info.depends})
	for _, soft := range info.softPost {
		if dep, ok := r.kernel.resolveAlias(soft); ok && r.state[dep] == 0 {
			_ = r.visit(dep, chain)
		}
	}
	return nil
}

// info reads (and caches) the .modinfo section of a module.
func (k *Kernel) info(name string) (modInfo, error) {
	if info, ok := k.modinfo[name]; ok {
		return info, nil
	}
	file := filepath.Join(k.modulesDir, k.byName[name])
	f, err := elf.Open(file)
	if err != nil {
		return modInfo{}, fmt.Errorf("module %s: %w", name, err)
	}
	defer f.Close()
	section := f.Section(".modinfo")
	if section == nil {
		return modInfo{}, fmt.Errorf("module %s: no .modinfo section in %s", name, file)
	}
	data, err := section.Data()
	if err != nil {
		return modInfo{}, fmt.Errorf("module %s: reading .modinfo: %w", name, err)
	}
	var info modInfo
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		switch key {
		case "depends":
			for _, dep := range strings.Split(value, ",") {
				if dep != "" {
					info.depends = append(info.depends, moduleName(dep))
				}
			}
		case "softdep":
			// "pre: a b post: c", possibly only one half.
			list := &info.softPre
			for _, word := range strings.Fields(value) {
				switch word {
				case "pre:":
					list = &info.softPre
				case "post:":
					list = &info.softPost
				default:
					*list = append(*list, word)
				}
			}
		case "alias":
			info.aliases = append(info.aliases, value)
		}
	}
	k.modinfo[name] = info
	return info, nil
}

// resolveAlias maps a softdep entry, a module name or an alias like "crc32c", to a module.
// Scanning every module's aliases would read all ~4000 files, so only modules whose name
// contains the alias are checked; portable implementations (outside arch/) are preferred
// because the guest's emulated CPU may lack the instructions the accelerated ones need.
func (k *Kernel) resolveAlias(alias string) (string, bool) {
	name := moduleName(alias)
	if _, ok := k.byName[name]; ok || k.builtin[name] {
		return name, true
	}
	var candidates []string
	for candidate := range k.byName {
		if strings.Contains(candidate, name) {
			candidates = append(candidates, candidate)
		}
	}
	sort.Slice(candidates, func(i, j int) bool {
		ai := strings.HasPrefix(k.byName[candidates[i]], "kernel/arch/")
		aj := strings.HasPrefix(k.byName[candidates[j]], "kernel/arch/")
		if ai != aj {
			return !ai
		}
		return candidates[i] < candidates[j]
	})
	for _, candidate := range candidates {
		info, err := k.info(candidate)
		if err != nil {
			continue
		}
		for _, a := range info.aliases {
			if a == alias || a == "crypto-"+alias {
				return candidate, true
			}
		}
	}
	return "", false
}

// modulesDep renders a modules.dep for the chosen modules, so that busybox modprobe inside the
// guest succeeds (github.com/moby/ipvs runs "modprobe -va ip_vs" in ipvs.New). Each line lists
// the module's transitive hard dependencies, the most dependent first, as depmod does.
func modulesDep(modules []Module) []byte {
	byName := map[string]Module{}
	for _, m := range modules {
		byName[m.Name] = m
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, m := range modules {
		seen := map[string]bool{}
		var deps []string
		var walk func(string)
		walk = func(name string) {
			for _, dep := range byName[name].Depends {
				if seen[dep] {
					continue
				}
				seen[dep] = true
				if d, ok := byName[dep]; ok {
					deps = append(deps, d.Path)
				}
				walk(dep)
			}
		}
		walk(m.Name)
		fmt.Fprintf(w, "%s:", m.Path)
		for _, dep := range deps {
			fmt.Fprintf(w, " %s", dep)
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush() // writes to a bytes.Buffer cannot fail
	return buf.Bytes()
}
