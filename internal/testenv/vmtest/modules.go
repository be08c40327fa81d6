package vmtest

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// ModuleClosure returns the .ko files (relative to modDir, the
// lib/modules/<release> directory) needed to load the named modules, each
// after the modules it depends on. Dependencies come from each module's
// .modinfo section, so no modules.dep (depmod) is needed. Names built into
// the kernel (modules.builtin) are skipped.
func ModuleClosure(modDir string, names []string) ([]string, error) {
	files := make(map[string]string)
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(modDir, p)
			files[modName(filepath.Base(p))] = rel
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

func moduleDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", ko, err)
	}
	for _, kv := range strings.Split(string(data), "\x00") {
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
		if line != "" {
			out[modName(filepath.Base(line))] = true
		}
	}
	return out
}
