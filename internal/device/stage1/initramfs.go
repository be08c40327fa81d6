package stage1

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/initramfs"
	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// ErrInitramfs marks a failed initramfs build.
var ErrInitramfs = errors.New("initramfs build failed")

// stage2Modules are the modules stage 2 needs besides the disk driver:
// resin-boot is vfat, resin-data ext4.
func stage2Modules() []string {
	return []string{"vfat", "fat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "ext4"}
}

// initramfsName is the file stage 1 builds in the home dir and installs in
// the boot directory.
func initramfsName(release string) string { return "balena-migrate-initramfs-" + release }

// checkStaticBinary refuses a dynamically linked binary: the initramfs has
// no C library for it.
func (f files) checkStaticBinary(path string) error {
	ef, err := elf.Open(f.p(path))
	if err != nil {
		return fmt.Errorf("%w: the balena-migrate binary %s: %w", ErrInitramfs, path, err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: the balena-migrate binary %s is dynamically linked and cannot run in the initramfs: use a static build (scripts/build-balena-migrate, CGO_ENABLED=0)", ErrInitramfs, path)
		}
	}
	return nil
}

// buildInitramfs copies /etc/initramfs-tools into the home dir, adds the
// balena-migrate hook and local-bottom script and runs mkinitramfs. It
// returns the device path of the new initramfs.
func (r *run) buildInitramfs(ctx context.Context, f facts) (string, error) {
	confDir := filepath.Join(r.cfg.HomeDir, "initramfs-tools")
	if err := r.journal.Replace(confDir); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
	}
	if err := copyTree(r.p("/etc/initramfs-tools"), r.p(confDir)); err != nil {
		return "", fmt.Errorf("%w: copy /etc/initramfs-tools: %w", ErrInitramfs, err)
	}
	mods := append(stage2Modules(), f.layout.Root.Modules...)
	if f.watchdog.module != "" {
		mods = append(mods, f.watchdog.module)
	}
	if r.exists("/sys/firmware/efi") && r.kernelModules(f.release)["efivarfs"] && !r.builtinModules(f.release)["efivarfs"] {
		// stage 2 writes the UEFI boot entry of the flashed disk through it
		mods = append(mods, "efivarfs")
	}
	var progs []string
	for _, p := range stage2Programs(r.cfg) {
		progs = append(progs, f.progs[p])
	}
	settings := envfile.New()
	for _, kv := range [][2]string{
		{"BALENA_MIGRATE_BIN", r.binary},
		{"BALENA_MIGRATE_STAGE2_CONF", r.s2path},
		{"BALENA_MIGRATE_MODULES", strings.Join(mods, " ")},
		{"BALENA_MIGRATE_PROGRAMS", strings.Join(progs, " ")},
	} {
		if err := settings.Set(kv[0], kv[1]); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
		}
	}
	conf, err := settings.Marshal()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
	}
	for _, w := range []struct {
		path string
		data []byte
		perm fs.FileMode
	}{
		{filepath.Join(confDir, initramfs.HookConfName), conf, 0o644},
		{filepath.Join(confDir, "hooks", initramfs.ScriptName), []byte(initramfs.Hook), 0o755},
		{filepath.Join(confDir, "scripts", "local-bottom", initramfs.ScriptName), []byte(initramfs.LocalBottom), 0o755},
		{filepath.Join(confDir, "scripts", "init-top", initramfs.ScriptName), []byte(initramfs.InitTop), 0o755},
	} {
		if err := os.MkdirAll(filepath.Dir(r.p(w.path)), 0o755); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
		}
		if err := os.WriteFile(r.p(w.path), w.data, w.perm); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
		}
	}
	out := filepath.Join(r.cfg.HomeDir, initramfsName(f.release))
	if err := r.journal.Replace(out); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
	}
	r.log.Info("building %s with mkinitramfs (modules: %s)", out, strings.Join(mods, " "))
	if _, err := r.host.Run(ctx, nil, f.progs["mkinitramfs"], "-d", confDir, "-o", out, f.release); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInitramfs, err)
	}
	st, err := r.stat(out)
	if err != nil || st.Size() == 0 {
		return "", fmt.Errorf("%w: mkinitramfs wrote no %s", ErrInitramfs, out)
	}
	r.log.Info("initramfs %s: %d KiB", out, st.Size()>>10)
	if err := r.checkInitramfs(ctx, f, out, mods, stage2Programs(r.cfg)); err != nil {
		return "", err
	}
	return out, nil
}

// copyTree copies a directory tree (files, dirs, symlinks) from src to a new dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case de.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil
	})
}

// checkMemory estimates what stage 2 holds in RAM: the compressed image and
// the backup copied to tmpfs plus the unpacked initramfs.
func (r *run) checkMemory(imageGz, backup, initrd string) error {
	data, err := r.read("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("read /proc/meminfo: %w", err)
	}
	var totalKiB int64
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &totalKiB)
		}
	}
	if totalKiB == 0 {
		return errors.New("/proc/meminfo has no MemTotal")
	}
	var need int64
	for i, p := range []string{imageGz, backup, initrd} {
		if p == "" {
			continue
		}
		st, err := r.stat(p)
		if err != nil {
			return err
		}
		if i == 2 {
			need += 3 * st.Size() // unpacked, roughly
		} else {
			need += st.Size()
		}
	}
	left := totalKiB<<10 - need
	r.log.Info("memory: %d MiB total, stage 2 needs about %d MiB, %d MiB would be left (MEM_MIN_FREE_S1 %d MiB)", totalKiB>>10, need>>20, left>>20, r.cfg.MemMinFreeS1>>20)
	if left < r.cfg.MemMinFreeS1 {
		return fmt.Errorf("%w: not enough memory for stage 2: image, backup and initramfs need about %d MiB of %d MiB, leaving less than MEM_MIN_FREE_S1 (%d MiB): make the backup smaller", errNoSpace, need>>20, totalKiB>>10, r.cfg.MemMinFreeS1>>20)
	}
	return nil
}
