package stage1

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Stage 1 refuses what stage 2 could not finish: stage 2 runs after the
// point of no return with only what the initramfs carries, so every boot
// loader mode, program and module it will use is checked here.

// imageHead is how much of the image checkGrubFlash reads: the MBR, a GPT
// header and its entries, and the MBR gap up to the usual first partition.
const imageHead = 1 << 20

// checkGrubFlash refuses a legacy GRUB_INSTALL=FLASH that would destroy the
// image: core.img goes from sector 1 on, which on a GPT image is the
// partition table, and it must end before the first partition.
func (r *run) checkGrubFlash(img Image, p bootPlan) error {
	if p.grubInstall != s2config.GrubFlash || p.grubBoot != s2config.BootLegacy {
		return nil
	}
	head, err := readImageHead(r.p(img.Path))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrImage, img.Path, err)
	}
	if len(head) >= 2*blkdev.SectorSize && bytes.Equal(head[blkdev.SectorSize:blkdev.SectorSize+8], []byte("EFI PART")) {
		return usage.Errorf("GRUB_INSTALL=TRUE with GRUB_CORE_IMG cannot be used with %s: it is a GPT image and core.img would overwrite its partition table; unset GRUB_INSTALL (the image boots with its own grub)", img.Path)
	}
	parts, err := blkdev.ReadTable(bytes.NewReader(head))
	if err != nil {
		return fmt.Errorf("%w: partition table of %s: %w", ErrImage, img.Path, err)
	}
	first := int64(-1)
	for _, pt := range parts {
		if first < 0 || pt.Start < first {
			first = pt.Start
		}
	}
	st, err := r.stat(r.cfg.GrubCoreImg)
	if err != nil {
		return usage.Errorf("GRUB_CORE_IMG %s: %w", r.cfg.GrubCoreImg, err)
	}
	if gap := first - blkdev.SectorSize; st.Size() > gap {
		return usage.Errorf("GRUB_CORE_IMG %s is %d bytes but the image leaves %d bytes between the MBR and its first partition: extract core.img from the flasher image of this balenaOS release", r.cfg.GrubCoreImg, st.Size(), gap)
	}
	return nil
}

func readImageHead(gzPath string) ([]byte, error) {
	f, err := os.Open(gzPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	head, err := io.ReadAll(io.LimitReader(zr, imageHead))
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return head, nil
}

// stage2Programs are the programs stage 2 will run from the initramfs.
func stage2Programs(c *Config) []string {
	if c.MaxBadblocks != "" {
		return []string{"badblocks"}
	}
	return nil
}

// checkInitramfs lists the built initramfs and refuses it when something
// stage 2 needs is not inside: our binary, its config, the local-bottom
// script, every module (unless built into the kernel) and every program.
func (r *run) checkInitramfs(ctx context.Context, f facts, initrd string, mods, progs []string) error {
	out, err := r.host.Run(ctx, nil, f.progs["lsinitramfs"], initrd)
	if err != nil {
		return fmt.Errorf("%w: list %s: %w", ErrInitramfs, initrd, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "./")
		have[l] = true
		// lib may be a symlink to usr/lib, bin to usr/bin
		have[strings.TrimPrefix(l, "usr/")] = true
		if base := path.Base(l); strings.Contains(base, ".ko") {
			have["module:"+moduleName(base)] = true
		}
	}
	builtin := r.builtinModules(f.release)
	var missing []string
	for _, f := range []string{"bin/balena-migrate", "etc/balena-migrate-stage2.conf", "scripts/local-bottom/balena-migrate", "scripts/init-top/balena-migrate"} {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	for _, m := range mods {
		if n := moduleName(m); !have["module:"+n] && !builtin[n] {
			missing = append(missing, "module "+m)
		}
	}
	for _, p := range progs {
		if !have[strings.TrimPrefix(strings.TrimPrefix(f.progs[p], "/"), "usr/")] {
			missing = append(missing, "program "+p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s lacks %s, which stage 2 needs: check /etc/initramfs-tools (hooks, MODULES) and run balena-migrate again", ErrInitramfs, initrd, strings.Join(missing, ", "))
	}
	r.log.Info("initramfs carries balena-migrate, its config, %d modules and %d programs stage 2 needs", len(mods), len(progs))
	return nil
}

// moduleName is a module's name as modprobe sees it: no directory, no
// .ko[.xz|.zst|.gz], dashes as underscores.
func moduleName(s string) string {
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}
