package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// guestModules are the modules the initrd loads (with what they depend
// on): virtio over MMIO (microvm) and PCI (pc), its block, network,
// console and entropy devices, and ext4 with the crc32c it checksums with.
var guestModules = []string{
	"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng",
	"crc32c_generic", "ext4",
}

// kernel is what Build takes from the kernel package, cached in
// CacheDir/kernel/<deb name>/.
type kernel struct {
	version string
	vmlinux string
	modules []string // .ko files in load order
}

// checkStatic fails unless path is an x86-64 ELF executable without an
// interpreter (ErrDynamicBinary when it has one).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("vmimage: %s: %w: %v", path, errNotELF, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		return fmt.Errorf("vmimage: %s: %w (%v %v)", path, errNotELF, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			return fmt.Errorf("%w: %s needs %s; build it with CGO_ENABLED=0",
				ErrDynamicBinary, path, strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}

// kernelFiles returns the vmlinux and the guest's modules of the kernel in
// deb, extracting them into the cache the first time.
func kernelFiles(ctx context.Context, deb, cacheDir, workDir string, r reporter) (*kernel, error) {
	dir := filepath.Join(cacheDir, "kernel", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if k, err := readKernelCache(dir); err == nil {
		r.log.Debug("kernel files cached", "dir", dir)
		return k, nil
	}
	r.log.Info("extracting kernel", "deb", filepath.Base(deb))
	r.say("extracting the kernel and its modules from %s", filepath.Base(deb))
	tmp, err := os.MkdirTemp(workDir, ".kernel-")
	if err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if _, err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
		return nil, fmt.Errorf("vmimage: unpack kernel: %w", err)
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, fmt.Errorf("vmimage: %s holds %d kernels, want 1", filepath.Base(deb), len(vmlinuz))
	}
	version := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	bz, err := os.ReadFile(vmlinuz[0])
	if err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	vmlinux, err := vmlinuxFromBzImage(bz)
	if err != nil {
		return nil, err
	}
	modules, err := resolveModules(filepath.Join(root, "lib", "modules", version), guestModules)
	if err != nil {
		return nil, err
	}

	// Assemble the cache entry beside its place and rename it in, so that a
	// concurrent build sees all of it or nothing.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	staging, err := os.MkdirTemp(filepath.Dir(dir), ".staging-")
	if err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	if err := os.Mkdir(filepath.Join(staging, "modules"), 0o755); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, "vmlinux"), vmlinux, 0o644); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	var order []string
	for _, m := range modules {
		b, err := readModule(m.path)
		if err != nil {
			return nil, err
		}
		name := m.name + ".ko"
		if err := os.WriteFile(filepath.Join(staging, "modules", name), b, 0o644); err != nil {
			return nil, fmt.Errorf("vmimage: %w", err)
		}
		order = append(order, name)
	}
	if err := os.WriteFile(filepath.Join(staging, "modules.order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, "version"), []byte(version+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	if err := os.Rename(staging, dir); err != nil {
		if k, cerr := readKernelCache(dir); cerr == nil {
			return k, nil // another build got there first
		}
		return nil, fmt.Errorf("vmimage: cache kernel files: %w", err)
	}
	r.log.Info("kernel extracted", "version", version, "modules", order)
	return readKernelCache(dir)
}

func readKernelCache(dir string) (*kernel, error) {
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return nil, err
	}
	order, err := os.ReadFile(filepath.Join(dir, "modules.order"))
	if err != nil {
		return nil, err
	}
	k := &kernel{version: strings.TrimSpace(string(v)), vmlinux: filepath.Join(dir, "vmlinux")}
	if _, err := os.Stat(k.vmlinux); err != nil {
		return nil, err
	}
	for _, name := range strings.Fields(string(order)) {
		k.modules = append(k.modules, filepath.Join(dir, "modules", name))
	}
	return k, nil
}

// module is what a .ko's .modinfo section says.
type module struct {
	name    string
	path    string
	depends []string // hard dependencies
	pre     []string // softdep pre: modules (or aliases) to load first, when they exist
	aliases []string
}

// resolveModules returns the modules in modDir (a kernel's
// /lib/modules/<version>) needed to load want, dependencies first, skipping
// those built into the kernel. Debian's package has no modules.dep (depmod
// makes it at install time), so it reads each module's .modinfo.
func resolveModules(modDir string, want []string) ([]module, error) {
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[moduleName(l)] = true
		}
	}
	byName := map[string]*module{}
	byAlias := map[string][]*module{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || moduleName(path) == "" {
			return err
		}
		m, err := readModinfo(path)
		if err != nil {
			return err
		}
		byName[m.name] = m
		for _, a := range m.aliases {
			byAlias[a] = append(byAlias[a], m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vmimage: read modules: %w", err)
	}
	find := func(name string) *module {
		name = moduleName(name + ".ko")
		if m := byName[name]; m != nil {
			return m
		}
		// An alias (crc32c): prefer the generic implementation, which needs no CPU feature.
		var pick *module
		for _, m := range byAlias[name] {
			if pick == nil || strings.Contains(m.name, "generic") {
				pick = m
			}
		}
		return pick
	}
	var out []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, optional bool) error
	visit = func(name string, optional bool) error {
		if builtin[moduleName(name+".ko")] {
			return nil
		}
		m := find(name)
		if m == nil {
			if optional {
				return nil
			}
			return fmt.Errorf("vmimage: kernel module %s not found in %s", name, modDir)
		}
		switch state[m.name] {
		case 1:
			return fmt.Errorf("vmimage: kernel module %s depends on itself", m.name)
		case 2:
			return nil
		}
		state[m.name] = 1
		for _, d := range m.pre {
			if err := visit(d, true); err != nil {
				return err
			}
		}
		for _, d := range m.depends {
			if err := visit(d, false); err != nil {
				return err
			}
		}
		state[m.name] = 2
		out = append(out, *m)
		return nil
	}
	for _, w := range want {
		if err := visit(w, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// moduleName is the module name of a .ko file path ("" when it is none):
// its base name without extensions, dashes as underscores.
func moduleName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".ko.xz", ".ko.gz", ".ko.zst", ".ko"} {
		if n, ok := strings.CutSuffix(base, ext); ok {
			return strings.ReplaceAll(n, "-", "_")
		}
	}
	return ""
}

// readModule returns a module file's bytes, decompressed (busybox insmod
// cannot load compressed modules).
func readModule(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vmimage: %w", err)
	}
	switch {
	case strings.HasSuffix(path, ".ko"):
		return b, nil
	case strings.HasSuffix(path, ".ko.xz"):
		r, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("vmimage: %s: %w", path, err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("vmimage: %s: %w", path, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("vmimage: %s: unsupported module compression", path)
	}
}

// readModinfo reads a module's name, dependencies and aliases.
func readModinfo(path string) (*module, error) {
	b, err := readModule(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("vmimage: module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("vmimage: module %s has no .modinfo", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("vmimage: module %s: %w", path, err)
	}
	m := &module{name: moduleName(path), path: path}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.name = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					m.depends = append(m.depends, d)
				}
			}
		case "softdep":
			m.pre = append(m.pre, softdepPre(v)...)
		case "alias":
			m.aliases = append(m.aliases, v)
		}
	}
	return m, nil
}

// softdepPre returns the "pre:" modules of a softdep value such as
// "pre: crc32c post: foo".
func softdepPre(v string) []string {
	var out []string
	pre := false
	s := bufio.NewScanner(strings.NewReader(v))
	s.Split(bufio.ScanWords)
	for s.Scan() {
		switch w := s.Text(); w {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				out = append(out, w)
			}
		}
	}
	return out
}
