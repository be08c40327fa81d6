package s2config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// key binds one config key to its field: get renders it, set parses it.
type key struct {
	name string
	get  func(*Config) string
	set  func(*Config, string) error
}

func str(name string, f func(*Config) *string) key {
	return key{name,
		func(c *Config) string { return *f(c) },
		func(c *Config, v string) error { *f(c) = v; return nil }}
}

func boolean(name string, f func(*Config) *bool) key {
	return key{name,
		func(c *Config) string {
			if *f(c) {
				return "TRUE"
			}
			return "FALSE"
		},
		func(c *Config, v string) error {
			b, err := devproto.ParseBool(v)
			*f(c) = b
			return err
		}}
}

// keys lists every stage-2 key in the order Marshal writes them.
func keys() []key {
	return []key{
		str("BOOT_DEV", func(c *Config) *string { return &c.BootDev }),
		str("ROOT_MNT", func(c *Config) *string { return &c.RootMnt }),
		str("HOME_DIR", func(c *Config) *string { return &c.HomeDir }),
		str("IMAGE_FILE", func(c *Config) *string { return &c.ImageFile }),
		{"IMAGE_SHA256", func(c *Config) string { return c.ImageSHA256 },
			func(c *Config, v string) error { c.ImageSHA256 = strings.ToLower(v); return nil }},
		str("BACKUP_FILE", func(c *Config) *string { return &c.BackupFile }),
		str("BALENA_CONFIG", func(c *Config) *string { return &c.BalenaConfig }),
		{"NETWORK_CONFIGS", func(c *Config) string { return joinNames(c.NetworkConfigs) },
			func(c *Config, v string) (err error) { c.NetworkConfigs, err = splitNames(v); return err }},
		{"DISK_SIZE", func(c *Config) string { return strconv.FormatInt(c.DiskSize, 10) },
			func(c *Config, v string) (err error) { c.DiskSize, err = parseInt(v); return err }},
		str("DISK_TABLE_ID", func(c *Config) *string { return &c.DiskTableID }),
		{"ROOT_PART_START", func(c *Config) string { return strconv.FormatInt(c.RootPartStart, 10) },
			func(c *Config, v string) (err error) { c.RootPartStart, err = parseInt(v); return err }},
		str("DISK_SERIAL", func(c *Config) *string { return &c.DiskSerial }),
		str("MIGRATE_TMP", func(c *Config) *string { return &c.MigrateTmp }),
		str("BOOT_MNT_DIR", func(c *Config) *string { return &c.BootMntDir }),
		str("DATA_MNT_DIR", func(c *Config) *string { return &c.DataMntDir }),
		{"RESTORE_BOOT_FILES", func(c *Config) string { return renderRestore(c.RestoreBootFiles) },
			func(c *Config, v string) (err error) { c.RestoreBootFiles, err = parseRestore(v); return err }},
		{"REMOVE_BOOT_FILES", func(c *Config) string { return strings.Join(c.RemoveBootFiles, " ") },
			func(c *Config, v string) error { c.RemoveBootFiles = strings.Fields(v); return nil }},
		{"CLEANUP_FILES", func(c *Config) string { return joinNames(c.CleanupFiles) },
			func(c *Config, v string) (err error) { c.CleanupFiles, err = splitNames(v); return err }},
		str("ORIG_BOOT_PART", func(c *Config) *string { return &c.OrigBootPart }),
		str("ORIG_BOOT_FS_TYPE", func(c *Config) *string { return &c.OrigBootFSType }),
		boolean("MOUNT_BOOT", func(c *Config) *bool { return &c.MountBoot }),
		boolean("NO_FLASH", func(c *Config) *bool { return &c.NoFlash }),
		{"TERM_EXIT", func(c *Config) string { return c.TermExit.String() },
			func(c *Config, v string) (err error) { c.TermExit, err = ParseTermExit(v); return err }},
		str("LOG_DRIVE", func(c *Config) *string { return &c.LogDrive }),
		str("LOG_FS_TYPE", func(c *Config) *string { return &c.LogFSType }),
		{"MEM_MIN_FREE", func(c *Config) string { return strconv.FormatInt(c.MemMinFree, 10) },
			func(c *Config, v string) (err error) { c.MemMinFree, err = devproto.ParseSize(v); return err }},
		str("MAX_BADBLOCKS", func(c *Config) *string { return &c.MaxBadblocks }),
		str("GRUB_INSTALL", func(c *Config) *string { return &c.GrubInstall }),
		str("GRUB_BOOT_TYPE", func(c *Config) *string { return &c.GrubBootType }),
		str("GRUB_CFG", func(c *Config) *string { return &c.GrubCfg }),
		str("GRUB_BOOT_IMG", func(c *Config) *string { return &c.GrubBootImg }),
		str("GRUB_CORE_IMG", func(c *Config) *string { return &c.GrubCoreImg }),
		{"WATCHDOG", func(c *Config) string { return strconv.Itoa(c.Watchdog) },
			func(c *Config, v string) error { n, err := parseInt(v); c.Watchdog = int(n); return err }},
		str("WATCHDOG_MODULE", func(c *Config) *string { return &c.WatchdogModule }),
	}
}

// Keys returns the names of every stage-2 key, in file order.
func Keys() []string {
	var out []string
	for _, k := range keys() {
		out = append(out, k.name)
	}
	return out
}

// Load reads and validates the config at path. Missing keys keep their
// defaults; unknown keys are ignored so newer stage-1 files still load.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read stage-2 config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads and validates a config from its bytes.
func Parse(data []byte) (Config, error) {
	f, err := envfile.Parse(data)
	if err != nil {
		return Config{}, usage.Errorf("invalid stage-2 config: %w", err)
	}
	c := Default()
	for _, k := range keys() {
		v, ok := f.Get(k.name)
		if !ok {
			continue
		}
		if err := k.set(&c, v); err != nil {
			return Config{}, usage.Errorf("invalid stage-2 config: %s: %w", k.name, err)
		}
	}
	return c, c.Validate()
}

// Marshal renders every key, defaults included, as a bash- and
// godotenv-safe KEY=VALUE file. It does not validate; Write does.
func (c Config) Marshal() ([]byte, error) {
	f := envfile.New()
	for _, k := range keys() {
		if err := f.Set(k.name, k.get(&c)); err != nil {
			return nil, usage.Errorf("invalid stage-2 config: %w", err)
		}
	}
	return f.Marshal()
}

// Write validates c and writes it atomically to path with mode 0600.
func (c Config) Write(path string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, filepath.Dir(path), data, 0o600); err != nil {
		return fmt.Errorf("write stage-2 config: %w", err)
	}
	return nil
}

func parseInt(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	return n, nil
}

func renderRestore(ps []RestorePair) string {
	var parts []string
	for _, p := range ps {
		e := p.Backup + ":" + p.Original
		if p.SHA256 != "" {
			e += ":" + p.SHA256
		}
		parts = append(parts, e)
	}
	return strings.Join(parts, " ")
}

func parseRestore(v string) ([]RestorePair, error) {
	var out []RestorePair
	for _, f := range strings.Fields(v) {
		b, o, ok := strings.Cut(f, ":")
		o, sum, _ := strings.Cut(o, ":")
		if !ok || b == "" || o == "" || sum != "" && !isSHA256(sum) {
			return nil, fmt.Errorf("%q is not backup:original[:sha256]", f)
		}
		out = append(out, RestorePair{Backup: b, Original: o, SHA256: sum})
	}
	return out, nil
}

// nameEscapes encode what would split a list of names (NETWORK_CONFIGS):
// NetworkManager names its files after their connections, spaces and all
// ("Wired connection 1.nmconnection").
var nameEscapes = strings.NewReplacer("%", "%25", " ", "%20", "\t", "%09", "\n", "%0A", "\r", "%0D")

// joinNames renders names as one space-separated value; a name keeps its
// spaces as %20 (and % as %25), so any name comes back whole.
func joinNames(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = nameEscapes.Replace(n)
	}
	return strings.Join(out, " ")
}

// splitNames reads what joinNames wrote.
func splitNames(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Fields(v) {
		n, err := url.PathUnescape(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}
