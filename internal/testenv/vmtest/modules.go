package vmtest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleClosure returns the module files (relative to modDir, the
// lib/modules/<release> directory) needed to load the named modules, each
// after the modules it depends on. Dependencies come from each module's
// .modinfo section, so no modules.dep (depmod) is needed. Names built into
// the kernel (modules.builtin) are skipped. Modules may be compressed
// (.ko.xz, .ko.zst, as Debian 13 ships them); AddModules unpacks them.
func ModuleClosure(modDir string, names []string) ([]string, error) {
	files := make(map[string]string)
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := moduleFile(filepath.Base(p)); ok {
			rel, _ := filepath.Rel(modDir, p)
			files[modName(name)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules in %s: %w", modDir, err)
	}
	builtin := builtinModules(modDir)
	var order []string
	state := make(map[string]int) // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		n = modName(n)
		switch {
		case state[n] == 2, builtin[n]:
			return nil
		case state[n] == 1:
			return fmt.Errorf("module dependency cycle at %s", n)
		}
		rel, ok := files[n]
		if !ok {
			return fmt.Errorf("module %s: not in %s and not built in", n, modDir)
		}
		state[n] = 1
		deps, err := moduleDepends(filepath.Join(modDir, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		state[n] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func modName(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(file, ".ko"), "-", "_")
}

// moduleFile says whether a file name is a kernel module, and its name as
// .ko.
func moduleFile(base string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst"} {
		if strings.HasSuffix(base, ext) {
			return strings.TrimSuffix(base, ext) + ".ko", true
		}
	}
	return "", false
}

// readModule returns a module file's ELF bytes, unpacked with xz or zstd.
func readModule(p string) ([]byte, error) {
	unpack := ""
	switch {
	case strings.HasSuffix(p, ".xz"):
		unpack = "xz"
	case strings.HasSuffix(p, ".zst"):
		unpack = "zstd"
	default:
		return os.ReadFile(p)
	}
	out, err := exec.Command(unpack, "-dc", p).Output()
	if err != nil {
		return nil, fmt.Errorf("module %s: %s -dc: %w", p, unpack, err)
	}
	return out, nil
}

// AddModules puts the modules rels (from ModuleClosure) into a at
// lib/modules/<name>.ko, unpacked: busybox's insmod reads plain ELF. It
// returns their paths there, in the order given.
func AddModules(a Archive, modDir string, rels []string) ([]string, error) {
	var out []string
	for _, rel := range rels {
		data, err := readModule(filepath.Join(modDir, rel))
		if err != nil {
			return nil, err
		}
		name, _ := moduleFile(filepath.Base(rel))
		dst := filepath.Join(filepath.Dir(rel), name)
		a.AddFile("lib/modules/"+dst, data, 0o644)
		out = append(out, dst)
	}
	return out, nil
}

func moduleDepends(ko string) ([]string, error) {
	data, err := readModule(ko)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	for _, kv := range strings.Split(string(info), "\x00") {
		if v, ok := strings.CutPrefix(kv, "depends="); ok && v != "" {
			return strings.Split(v, ","), nil
		}
	}
	return nil, nil
}

func builtinModules(modDir string) map[string]bool {
	out := make(map[string]bool)
	data, _ := readFileOrEmpty(filepath.Join(modDir, "modules.builtin"))
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := moduleFile(filepath.Base(line)); ok {
			out[modName(name)] = true
		}
	}
	return out
}
