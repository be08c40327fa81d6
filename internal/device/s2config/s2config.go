// Package s2config is the stage-2 config: the KEY=VALUE file stage 1 writes to
// /etc/balena-migrate-stage2.conf and `balena-migrate stage2` reads inside the
// initramfs (docs/stage2-config.md). It is the only contract between the two stages.
//
// Paths: BOOT_DEV, LOG_DRIVE and ORIG_BOOT_PART are device nodes; MIGRATE_TMP,
// ROOT_MNT, BOOT_MNT_DIR and DATA_MNT_DIR are paths in the initramfs; HOME_DIR
// and IMAGE_FILE are paths on the old root; BACKUP_FILE, BALENA_CONFIG,
// NETWORK_CONFIGS and the GRUB_* files are names in HOME_DIR (an absolute path
// is taken as a path on the old root). OldRoot and HomeFile resolve them.
package s2config

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Grub install modes (GRUB_INSTALL).
const (
	GrubNone    = ""
	GrubInstall = "INSTALL"
	GrubFlash   = "FLASH"
)

// Grub boot types (GRUB_BOOT_TYPE).
const (
	BootLegacy = "legacy"
	BootUEFI   = "UEFI"
)

// DefaultPath is where stage 1 writes the config and the initramfs carries it.
const DefaultPath = "/etc/balena-migrate-stage2.conf"

// RestorePair is one RESTORE_BOOT_FILES entry: copy Backup over Original on
// the original boot partition, if Backup's content has SHA256 (when set).
type RestorePair struct {
	Backup, Original string
	SHA256           string
}

// Config holds every stage-2 key. Default() gives the defaults; Load fills
// the rest from the file.
type Config struct {
	BootDev     string // BOOT_DEV: whole disk to flash
	RootMnt     string // ROOT_MNT: where the old root is mounted
	HomeDir     string // HOME_DIR: migration directory on the old root
	ImageFile   string // IMAGE_FILE: gzip image on the old root
	ImageSHA256 string // IMAGE_SHA256: SHA-256 of the decompressed image, lower-case hex

	BackupFile     string   // BACKUP_FILE: name in HOME_DIR, optional
	BalenaConfig   string   // BALENA_CONFIG: config.json name in HOME_DIR, optional
	NetworkConfigs []string // NETWORK_CONFIGS: space-separated names in HOME_DIR, a name's spaces as %20 and % as %25

	MigrateTmp string // MIGRATE_TMP: tmpfs work dir
	BootMntDir string // BOOT_MNT_DIR: resin-boot mount point
	DataMntDir string // DATA_MNT_DIR: resin-data mount point

	// The identity of BOOT_DEV as stage 1 saw it; stage 2 finds the disk
	// from the old root and flashes it only if it still matches.
	DiskSize         int64         // DISK_SIZE: bytes
	DiskTableID      string        // DISK_TABLE_ID: mbr:<signature> or gpt:<GUID>
	RootPartStart    int64         // ROOT_PART_START: byte offset of the old root's partition
	DiskSerial       string        // DISK_SERIAL: wwid:… or serial:… of the disk; "" when it has none
	RestoreBootFiles []RestorePair // RESTORE_BOOT_FILES: space-separated backup:original[:sha256]
	OrigBootPart     string        // ORIG_BOOT_PART: device of the original boot partition
	OrigBootFSType   string        // ORIG_BOOT_FS_TYPE: its filesystem type
	MountBoot        bool          // MOUNT_BOOT: the boot partition must be mounted to restore
	// REMOVE_BOOT_FILES: space-separated files stage 1 added on the original
	// boot partition for one boot only (a Pi's tryboot.txt), removed by the
	// first step of the stage-2 boot
	RemoveBootFiles []string
	// CLEANUP_FILES: space-separated absolute paths on the old root of what
	// stage 1 installed for the stage-2 boot (grub's 42_balena, the
	// initramfs), removed when stage 2 hands back to the old system, so that
	// no later update-grub offers a boot that flashes an old image.
	CleanupFiles []string

	NoFlash      bool     // NO_FLASH: stop before the point of no return
	TermExit     TermExit // TERM_EXIT: what a failure before the point of no return does
	LogDrive     string   // LOG_DRIVE: separate device for the log
	LogFSType    string   // LOG_FS_TYPE: its filesystem type
	MemMinFree   int64    // MEM_MIN_FREE: bytes that must stay free after copying to RAM
	MaxBadblocks string   // MAX_BADBLOCKS: N or N%; empty skips the scan

	GrubInstall  string // GRUB_INSTALL: "", INSTALL or FLASH
	GrubBootType string // GRUB_BOOT_TYPE: legacy or UEFI
	GrubCfg      string // GRUB_CFG: grub.cfg name in HOME_DIR
	GrubBootImg  string // GRUB_BOOT_IMG: boot.img name in HOME_DIR
	GrubCoreImg  string // GRUB_CORE_IMG: core.img name in HOME_DIR

	// The watchdog of the stage-2 boot: the initramfs arms it as early as it
	// can, stage 2 feeds it while it makes progress.
	Watchdog       int    // WATCHDOG: timeout in seconds; 0: no watchdog
	WatchdogModule string // WATCHDOG_MODULE: its driver module; empty: built in
}

// Watchdog timeouts stage 1 accepts: long enough for the initramfs to get
// from arming the watchdog to stage 2 on a slow board, short enough that a
// hung boot comes back within the hour.
const (
	MinWatchdog = 10
	MaxWatchdog = 3600
)

// TermExit is the TERM_EXIT action: either exit with Code or reboot.
type TermExit struct {
	Reboot bool
	Code   int
}

// String renders the action the way the config file spells it.
func (t TermExit) String() string {
	if t.Reboot {
		return "reboot -f"
	}
	return "exit " + strconv.Itoa(t.Code)
}

// ParseTermExit reads "exit N", "exit", "reboot" or "reboot -f".
func ParseTermExit(s string) (TermExit, error) {
	f := strings.Fields(s)
	switch {
	case len(f) == 1 && f[0] == "exit":
		return TermExit{}, nil
	case len(f) == 2 && f[0] == "exit":
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > 255 {
			return TermExit{}, fmt.Errorf("exit code %q is not 0..255", f[1])
		}
		return TermExit{Code: n}, nil
	case len(f) >= 1 && f[0] == "reboot" && (len(f) == 1 || len(f) == 2 && f[1] == "-f"):
		return TermExit{Reboot: true}, nil
	}
	return TermExit{}, fmt.Errorf("%q is not supported: write \"exit 0\" (the old system boots on) or \"reboot -f\"", s)
}

// Default returns the defaults of docs/stage2-config.md.
func Default() Config {
	return Config{
		RootMnt:      "/root",
		MigrateTmp:   "/balena-migrate",
		BootMntDir:   "/resin-boot",
		DataMntDir:   "/resin-data",
		NoFlash:      true,
		TermExit:     TermExit{Code: 0},
		MemMinFree:   devproto.DefaultMemMinFreeS2,
		GrubBootType: BootLegacy,
	}
}

// OldRoot maps a path on the old root to its path in the initramfs.
func (c Config) OldRoot(p string) string {
	return path.Join(c.RootMnt, p)
}

// HomeFile resolves a name from the config (BACKUP_FILE, GRUB_CFG, …) to its
// path in the initramfs: relative names are in HOME_DIR, absolute ones on the
// old root. IMAGE_FILE follows the same rule.
func (c Config) HomeFile(name string) string {
	if path.IsAbs(name) {
		return c.OldRoot(name)
	}
	return c.OldRoot(path.Join(c.HomeDir, name))
}

// Validate checks the values that have a fixed form; the error names the key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, usage.Errorf("invalid stage-2 config: %s: %s", key, fmt.Sprintf(format, a...)))
	}
	for _, k := range []struct{ key, val string }{
		{"BOOT_DEV", c.BootDev}, {"ROOT_MNT", c.RootMnt}, {"MIGRATE_TMP", c.MigrateTmp},
		{"BOOT_MNT_DIR", c.BootMntDir}, {"DATA_MNT_DIR", c.DataMntDir}, {"HOME_DIR", c.HomeDir},
	} {
		if !path.IsAbs(k.val) {
			bad(k.key, "must be an absolute path, got %q", k.val)
		}
	}
	if c.ImageFile == "" {
		bad("IMAGE_FILE", "must name the gzip image")
	}
	if !isSHA256(c.ImageSHA256) {
		bad("IMAGE_SHA256", "must be 64 hex digits, got %q", c.ImageSHA256)
	}
	for _, n := range append([]string{c.BackupFile, c.BalenaConfig}, c.NetworkConfigs...) {
		if strings.Contains(n, "..") {
			bad("BACKUP_FILE/BALENA_CONFIG/NETWORK_CONFIGS", "%q must not contain ..", n)
		}
	}
	for _, f := range c.RemoveBootFiles {
		if strings.Contains(f, "..") || path.IsAbs(f) {
			bad("REMOVE_BOOT_FILES", "%q must be a path inside the boot partition", f)
		}
	}
	for _, f := range c.CleanupFiles {
		if strings.Contains(f, "..") || !path.IsAbs(f) {
			bad("CLEANUP_FILES", "%q must be an absolute path on the old root", f)
		}
	}
	if (c.MountBoot || len(c.RemoveBootFiles) > 0) && c.OrigBootPart == "" {
		bad("ORIG_BOOT_PART", "must be set when MOUNT_BOOT=TRUE or REMOVE_BOOT_FILES is set")
	}
	if c.MemMinFree < 0 {
		bad("MEM_MIN_FREE", "must not be negative")
	}
	if c.MaxBadblocks != "" {
		if _, _, err := ParseBadblocks(c.MaxBadblocks); err != nil {
			bad("MAX_BADBLOCKS", "%v", err)
		}
	}
	switch c.GrubInstall {
	case GrubNone, GrubInstall, GrubFlash:
	default:
		bad("GRUB_INSTALL", "must be INSTALL, FLASH or empty, got %q", c.GrubInstall)
	}
	if c.GrubBootType != BootLegacy && c.GrubBootType != BootUEFI {
		bad("GRUB_BOOT_TYPE", "must be legacy or UEFI, got %q", c.GrubBootType)
	}
	// UEFI boots the image's EFI loader: FLASH there only places GRUB_CFG.
	if c.GrubInstall == GrubFlash && c.GrubBootType != BootUEFI && (c.GrubBootImg == "" || c.GrubCoreImg == "") {
		bad("GRUB_BOOT_IMG/GRUB_CORE_IMG", "both must be set when GRUB_INSTALL=FLASH on a legacy BIOS boot")
	}
	if c.Watchdog != 0 && (c.Watchdog < MinWatchdog || c.Watchdog > MaxWatchdog) {
		bad("WATCHDOG", "must be 0 (off) or %d..%d seconds, got %d", MinWatchdog, MaxWatchdog, c.Watchdog)
	}
	if strings.ContainsAny(c.WatchdogModule, " /") {
		bad("WATCHDOG_MODULE", "must be a module name, got %q", c.WatchdogModule)
	}
	return errors.Join(errs...)
}

// ParseBadblocks reads MAX_BADBLOCKS: "N" (blocks) or "N%" (of the disk).
func ParseBadblocks(s string) (n float64, percent bool, err error) {
	num := strings.TrimSuffix(s, "%")
	n, err = strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("%q is not N or N%%", s)
	}
	return n, num != s, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
