package vmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// ARMTreeScript builds the ARM Debian trees and caches the kernel of the
// arm64 one; relative to the repository root.
const ARMTreeScript = "scripts/test-setup.d/21-stage1-arm-chroot"

// PiKernelScript caches Debian 13's arm64 kernel with the Raspberry Pi's
// drivers and device trees, unpacked from its package (no tree is built).
const PiKernelScript = "scripts/test-setup.d/22-arm-pi-kernel"

// armKernelScript is the set-up step that caches each arm64 kernel.
var armKernelScript = map[string]string{"uefi-arm64-bookworm": ARMTreeScript, "rpi-arm64-trixie": PiKernelScript}

// ScriptKey is the hash a set-up script (relative to the repository root)
// names its output with.
func ScriptKey(repo, script string) (string, error) {
	data, err := os.ReadFile(filepath.Join(repo, script))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16], nil
}

// FindARMKernel locates an arm64 kernel cached by the current set-up
// step: "uefi-arm64-bookworm" (the UEFI tree's cloud kernel, with grub's
// arm64 EFI modules) or "rpi-arm64-trixie" (Debian 13's arm64 kernel with
// the Pi's device trees), each with a static arm64 busybox.
func FindARMKernel(repo, tree string) (Kernel, error) {
	script, ok := armKernelScript[tree]
	if !ok {
		return Kernel{}, fmt.Errorf("%w: no set-up step caches an arm64 kernel named %q", ErrNoKernel, tree)
	}
	key, err := ScriptKey(repo, script)
	if err != nil {
		return Kernel{}, err
	}
	dir := filepath.Join(CacheDir(), "debian-arm-"+tree+"-kernel-"+key)
	k := Kernel{Vmlinuz: filepath.Join(dir, "vmlinuz"), DTBs: filepath.Join(dir, "dtbs"), Busybox: filepath.Join(dir, "busybox"),
		GrubARM64: filepath.Join(dir, "grub-arm64-efi")}
	mods, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if len(mods) != 1 {
		return k, fmt.Errorf("%w in %s: run %s", ErrNoKernel, dir, script)
	}
	k.ModulesDir = mods[0]
	for _, p := range []string{k.Vmlinuz, k.Busybox} {
		if _, err := os.Stat(p); err != nil {
			return k, fmt.Errorf("%w: %v: run %s", ErrNoKernel, err, script)
		}
	}
	return k, nil
}
