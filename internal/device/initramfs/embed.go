// Package initramfs holds the initramfs-tools scripts that carry stage 2 of
// balena-migrate into the initramfs; stage 1 installs them from the binary.
package initramfs

import _ "embed"

// Hook is the initramfs-tools hook: it copies the binary, the stage-2 config
// and the kernel modules named in balena-migrate-hook.conf.
//
//go:embed hook
var Hook string

// LocalBottom is the local-bottom script that runs `balena-migrate stage2`.
//
//go:embed local-bottom
var LocalBottom string

// InitTop is the init-top script that runs `balena-migrate stage2 --early`:
// the watchdog is armed and changed boot files are put back first thing.
//
//go:embed init-top
var InitTop string

// HookConfName is the file in the initramfs-tools config dir the hook reads.
const HookConfName = "balena-migrate-hook.conf"

// ScriptName is the name of the scripts in hooks/, scripts/init-top/ and
// scripts/local-bottom/.
const ScriptName = "balena-migrate"
