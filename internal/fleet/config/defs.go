// Package config owns the migdb settings: their names, defaults and
// validation, and the one resolver every binary uses.
//
// Precedence, lowest first: built-in default < MIG_CFG settings file <
// environment < command line < the unit's own file (for that unit). Each resolved value remembers where it
// came from, so an error can name both the setting and its source.
package config

// Binary names a migdb program; a setting applies to some of them.
type Binary string

// The migdb programs.
const (
	AddUnit   Binary = "migdb-add-unit"
	Migrate   Binary = "migdb-migrate"
	CheckDone Binary = "migdb-check-done"
)

// Kind says how a value is validated.
type Kind int

// Kinds of values.
const (
	String  Kind = iota
	Port         // 1–65535
	Seconds      // whole seconds ≥ 0, or a Go duration like 3m
	Count        // whole number ≥ 1
	Enum         // one of Def.Enum (case-insensitive)
	Bool         // true/false, yes/no, on/off, 1/0 (case-insensitive)
	Host         // a host name or an IP address, nothing more (no user@, no :port)
)

// Setting names (their environment variables).
const (
	DBDir         = "MIG_DB_DIR"
	CfgFile       = "MIG_CFG"
	App           = "MIG_APP"
	BalenaVer     = "MIG_BALENA_VER"
	CfgDir        = "MIG_CFG_DIR"
	CfgArchive    = "MIG_CFG_ARCHIVE"
	SSHHost       = "MIG_SSH_HOST"
	SSHUser       = "MIG_SSH_USER"
	SSHPort       = "MIG_SSH_PORT"
	SSHPasswd     = "MIG_SSH_PASSWD"
	SSHOpts       = "MIG_SSH_OPTS"
	DefSSHOpts    = "MIG_DEF_SSH_OPTS"
	SSHKey        = "MIG_SSH_KEY"
	KnownHosts    = "MIG_KNOWN_HOSTS"
	HostKeyPolicy = "MIG_HOST_KEY_POLICY"
	MinAge        = "MIG_MIN_AGE"
	Duration      = "MIG_DURATION"
	ConnAttempts  = "MIG_CONN_ATTEMPTS"
	ReconnTime    = "MIG_RECONN_TIME"
	ConnTimeout   = "MIG_CONN_TIMEOUT"
	TxTimeout     = "MIG_TX_TIMEOUT"
	ExecTimeout   = "MIG_EXEC_TIMEOUT"
	MaxStatusAge  = "MIG_MAX_STATUS_AGE"
	CheckInterval = "MIG_CHECK_INTERVAL"
	Stage2Look    = "MIG_STAGE2_LOOK_AFTER"
	BalenaAPI     = "MIG_BALENA_API"
	BalenaToken   = "MIG_BALENA_TOKEN"
	Cloud         = "MIG_CLOUD"
	LogTo         = "MIG_LOG_TO"
	LogFormat     = "MIG_LOG_FORMAT"
	LogLevel      = "MIG_LOG_LEVEL"
	Color         = "MIG_COLOR"
	Jobs          = "MIG_JOBS"
	Rescan        = "MIG_RESCAN_INTERVAL"
	Pretend       = "MIG_PRETEND"
	Rehearsal     = "MIG_REHEARSAL"
	TagDevices    = "MIG_TAG_DEVICES"
	Progress      = "MIG_BALENA_PROGRESS"
	ImageURL      = "MIG_IMAGE_URL"
	// The rollout (package rollout) and the status address.
	Group       = "MIG_GROUP"
	Window      = "MIG_WINDOW"
	TZ          = "MIG_TZ"
	Waves       = "MIG_WAVES"
	MaxFail     = "MIG_MAX_FAIL"
	MaxPerGroup = "MIG_MAX_PER_GROUP"
	HTTP        = "MIG_HTTP"
	OSSSHKey    = "MIG_OS_SSH_KEY"
	OSSSHPort   = "MIG_OS_SSH_PORT"
)

// Def describes one setting.
type Def struct {
	Name    string   // environment variable and settings-file key
	Flags   []string // long name first, then aliases
	Usage   string
	Default string
	Kind    Kind
	Enum    []string
	Bins    []Binary
	Secret  bool // never printed
	Unit    bool // stored in unit files by add-unit; a unit may override it
	NoEnv   bool // flag only
	Path    bool // a leading ~/ is the user's home
	field   field
	check   func(raw string) error // more validation, after Kind's
}

var all = []Binary{AddUnit, Migrate, CheckDone}
var workers = []Binary{Migrate, CheckDone}
var submitters = []Binary{AddUnit, Migrate}

// defs is the settings table (docs/settings.md). It is read-only.
var defs = []Def{
	{Name: DBDir, Flags: []string{"base"}, Usage: "directory holding db/", Default: ".", Bins: all, Path: true, field: func(s *Settings) any { return &s.Process.DBDir }},
	{Name: CfgFile, Flags: []string{"cfg", "c"}, Usage: "settings file (KEY=VALUE); flags and environment beat it", Bins: all, Path: true, field: func(s *Settings) any { return &s.Process.CfgFile }},
	{Name: App, Flags: []string{"app"}, Usage: "balena fleet to register devices in (org/name, id or name)", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.App }},
	{Name: BalenaVer, Flags: []string{"balena-ver"}, Usage: "balenaOS version for config.json", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.BalenaVer }},
	{Name: CfgDir, Flags: []string{"cfg-dir", "mig-cfg-dir"}, Usage: "migration environment directory", Bins: submitters, Unit: true, Path: true, field: func(s *Settings) any { return &s.Unit.CfgDir }},
	{Name: CfgArchive, Flags: []string{"cfg-tgz"}, Usage: "migration environment as a .tgz", Bins: submitters, Unit: true, Path: true, field: func(s *Settings) any { return &s.Unit.CfgArchive }},
	{Name: ImageURL, Flags: []string{"image-url"}, Usage: "the devices fetch the image themselves from this base URL (a mirror; IMAGE_NAME is appended), checked against IMAGE_NAME.sha256 in the environment, instead of receiving it over SSH", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.ImageURL }},
	{Name: OSSSHKey, Flags: []string{"os-ssh-key"}, Usage: "public key file (OpenSSH .pub) put into config.json's os.sshKeys: balenaOS's host SSH (port 22222) lets its private half in, which migdb-check-done uses to look at a flashed device that never comes online", Bins: submitters, Unit: true, Path: true, field: func(s *Settings) any { return &s.Unit.OSSSHKey }},
	{Name: OSSSHPort, Flags: []string{"os-ssh-port"}, Usage: "port of balenaOS's host SSH on the device's address, where migdb-check-done looks before calling a device lost", Default: "22222", Kind: Port, Bins: []Binary{AddUnit, CheckDone}, Unit: true, field: func(s *Settings) any { return &s.Unit.OSSSHPort }},
	{Name: SSHHost, Flags: []string{"host"}, Usage: "device host name or address (the user and port go to --user and --port)", Kind: Host, Bins: all, Unit: true, field: func(s *Settings) any { return &s.Unit.SSHHost }},
	{Name: SSHUser, Flags: []string{"user", "u"}, Usage: "SSH user on the device", Bins: all, Unit: true, field: func(s *Settings) any { return &s.Unit.SSHUser }},
	{Name: SSHPort, Flags: []string{"port", "p"}, Usage: "SSH port", Default: "22", Kind: Port, Bins: all, Unit: true, field: func(s *Settings) any { return &s.Unit.SSHPort }},
	{Name: SSHPasswd, Flags: []string{"passwd"}, Usage: "SSH password (stored 0600, never logged; prefer keys)", Bins: all, Unit: true, Secret: true, field: func(s *Settings) any { return &s.Unit.SSHPasswd }},
	{Name: SSHOpts, Flags: []string{"ssh-opts"}, Usage: "OpenSSH options for this unit, appended to the worker's", Bins: []Binary{AddUnit}, Unit: true, field: func(s *Settings) any { return &s.Unit.SSHOpts }},
	{Name: DefSSHOpts, Flags: []string{"ssh-opts"}, Usage: "default OpenSSH options (-o Key=Value, -i, -p, -l)", Bins: workers, field: func(s *Settings) any { return &s.SSH.DefSSHOpts }},
	{Name: SSHKey, Flags: []string{"identity", "i"}, Usage: "private key file (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa, then ssh-agent)", Bins: all, Unit: true, Path: true, field: func(s *Settings) any { return &s.Unit.SSHKey }},
	{Name: KnownHosts, Flags: []string{"known-hosts"}, Usage: "known_hosts file", Default: "~/.ssh/known_hosts", Bins: workers, Path: true, field: func(s *Settings) any { return &s.SSH.KnownHosts }},
	{Name: HostKeyPolicy, Flags: []string{"host-key-policy"}, Usage: "strict, accept-new or off", Default: "accept-new", Kind: Enum, Enum: []string{"strict", "accept-new", "off"}, Bins: workers, field: func(s *Settings) any { return &s.SSH.HostKeyPolicy }},
	{Name: MinAge, Flags: []string{"min-age"}, Usage: "seconds a unit must be old before it is migrated", Default: "0", Kind: Seconds, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.MinAge }},
	{Name: Duration, Flags: []string{"dur", "mig-dur"}, Usage: "seconds to wait after migrating before checking", Default: "180", Kind: Seconds, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.Duration }},
	{Name: ConnAttempts, Flags: []string{"conn-attempts"}, Usage: "connection attempts before a unit fails", Default: "3", Kind: Count, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.ConnAttempts }},
	{Name: ReconnTime, Flags: []string{"reconn-time"}, Usage: "seconds before the first reconnect (doubled each retry, capped at a day)", Default: "600", Kind: Seconds, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.ReconnTime }},
	{Name: ConnTimeout, Flags: []string{"conn-timeout"}, Usage: "seconds to establish SSH", Default: "30", Kind: Seconds, Bins: workers, field: func(s *Settings) any { return &s.SSH.ConnTimeout }},
	{Name: TxTimeout, Flags: []string{"tx-timeout"}, Usage: "seconds for copying the migration environment", Default: "1200", Kind: Seconds, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.TxTimeout }},
	{Name: ExecTimeout, Flags: []string{"exec-timeout"}, Usage: "seconds for balena-migrate on the device", Default: "600", Kind: Seconds, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.ExecTimeout }},
	{Name: MaxStatusAge, Flags: []string{"max-age"}, Usage: "seconds after migration before an offline device counts as lost", Default: "900", Kind: Seconds, Bins: []Binary{CheckDone}, field: func(s *Settings) any { return &s.Check.MaxStatusAge }},
	{Name: CheckInterval, Flags: []string{"check-interval"}, Usage: "seconds between checks of one unit", Default: "60", Kind: Seconds, Bins: []Binary{CheckDone}, field: func(s *Settings) any { return &s.Check.CheckInterval }},
	{Name: Stage2Look, Flags: []string{"stage2-look-after"}, Usage: "seconds after migration before a device that is not online is looked at over SSH for a stage-2 refusal (then again after a doubling wait, from half this up to an hour); 0: only at --max-age", Default: "300", Kind: Seconds, Bins: []Binary{CheckDone}, field: func(s *Settings) any { return &s.Check.Stage2LookAfter }},
	{Name: BalenaAPI, Flags: []string{"balena-api"}, Usage: "balena API URL (default: as the balena CLI finds it: BALENARC_BALENA_URL, balenaUrl in ~/.balenarc.yml, else https://api.balena-cloud.com)", Bins: workers, field: func(s *Settings) any { return &s.Balena.API }},
	{Name: BalenaToken, Flags: []string{"balena-token"}, Usage: "balena API token (default: BALENA_API_KEY, $BALENARC_DATA_DIRECTORY/token, ~/.balena/token)", Bins: workers, Secret: true, field: func(s *Settings) any { return &s.Balena.Token }},
	{Name: Cloud, Flags: []string{"cloud"}, Usage: "api (native HTTPS) or cli (balena CLI on PATH)", Default: "api", Kind: Enum, Enum: []string{"api", "cli"}, Bins: workers, field: func(s *Settings) any { return &s.Balena.Client }},
	{Name: LogTo, Flags: []string{"log-to"}, Usage: "log file, or a directory for <dir>/<binary>-<pid>.log", Bins: all, Path: true, field: func(s *Settings) any { return &s.Process.LogTo }},
	{Name: LogFormat, Flags: []string{"log-format"}, Usage: "console or json", Default: "console", Kind: Enum, Enum: []string{"console", "json"}, Bins: all, field: func(s *Settings) any { return &s.Process.LogFormat }},
	{Name: LogLevel, Flags: []string{"log-level"}, Usage: "debug, info, warn or error", Default: "info", Kind: Enum, Enum: []string{"debug", "info", "warn", "error"}, Bins: all, field: func(s *Settings) any { return &s.Process.LogLevel }},
	{Name: Color, Flags: []string{"color"}, Usage: "ON or OFF; given, it beats NO_COLOR (default: ON on a terminal without NO_COLOR)", Kind: Enum, Enum: []string{"on", "off"}, Bins: all, NoEnv: true, field: func(s *Settings) any { return &s.Process.Color }},
	{Name: Pretend, Flags: []string{"pretend"}, Usage: "pre-flight only: probe, upload and run balena-migrate --pretend on each device; register nothing, reboot nothing; record PREFLIGHT in the unit", Default: "false", Kind: Bool, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.Pretend }},
	{Name: Rehearsal, Flags: []string{"rehearsal"}, Usage: "rehearse with an environment whose stage 2 does not flash (NO_FLASH=TRUE): register nothing; the device reboots into stage 2 and back; migdb-check-done records REHEARSAL", Default: "false", Kind: Bool, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Migrate.Rehearsal }},
	{Name: TagDevices, Flags: []string{"tag-devices"}, Usage: "tag each registered device with migdb_unit (the unit id) and migdb_host (its address); migdb-check-done tags the verdict as migdb_result: one more API request per tag", Default: "false", Kind: Bool, Bins: []Binary{Migrate, CheckDone}, field: func(s *Settings) any { return &s.Migrate.TagDevices }},
	{Name: Progress, Flags: []string{"balena-progress"}, Usage: "show on each registered device's balena dashboard entry where its migration is (registered, stage 1, rebooting, flashed; probe, upload and pre-flight too for a device registered by an earlier attempt): one API request per phase", Default: "true", Kind: Bool, Bins: []Binary{Migrate, CheckDone}, field: func(s *Settings) any { return &s.Migrate.Progress }},
	{Name: Jobs, Flags: []string{"jobs", "j"}, Usage: "units handled at once by this process", Default: "1", Kind: Count, Bins: workers, field: func(s *Settings) any { return &s.Process.Jobs }},
	{Name: Group, Flags: []string{"group"}, Usage: "the unit's group (a site): with --max-per-group, at most that many units of one group are between their claim and their end", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.Group }, check: checkGroup},
	{Name: Window, Flags: []string{"window"}, Usage: "maintenance window: units start only inside it, e.g. 22:00-05:00 (several: 01:00-04:00,22:00-23:30), in MIG_TZ", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.Window }, check: checkWindow},
	{Name: TZ, Flags: []string{"tz"}, Usage: "time zone of the maintenance window: a name like Europe/Berlin or an offset like UTC+05:30 (default: the host's local time)", Bins: submitters, Unit: true, field: func(s *Settings) any { return &s.Unit.TZ }, check: checkZone},
	{Name: Waves, Flags: []string{"waves"}, Usage: "roll out in waves, cumulative counts or percentages of the units submitted, in submission order, e.g. 1,10,25%,100%: a wave starts once every unit of the waves before it is in done/ or fail/", Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Rollout.Waves }, check: checkWaves},
	{Name: MaxFail, Flags: []string{"max-fail"}, Usage: "circuit breaker: pause every worker of the database (db/PAUSED) when more units than N, or more than P% of the units ended, have failed; per failure class too, e.g. 10%,stage2=0", Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Rollout.MaxFail }, check: checkMaxFail},
	{Name: MaxPerGroup, Flags: []string{"max-per-group"}, Usage: "at most this many units of one group (MIG_GROUP) between their claim and their end (done/ or fail/)", Kind: Count, Bins: []Binary{Migrate}, field: func(s *Settings) any { return &s.Rollout.MaxPerGroup }},
	{Name: HTTP, Flags: []string{"http"}, Usage: "serve the status page (/) and Prometheus metrics (/metrics) on this address, e.g. 127.0.0.1:9110", Bins: workers, field: func(s *Settings) any { return &s.Process.HTTP }, check: checkAddr},
	{Name: Rescan, Flags: []string{"rescan-interval"}, Usage: "seconds between full listings of the input directory: how soon units written on another NFS host, after lost file events, or left by a dead worker are seen", Default: "30", Kind: Seconds, Bins: workers, field: func(s *Settings) any { return &s.Process.Rescan }},
}

// Defs returns the settings that apply to bin.
func Defs(bin Binary) []Def {
	var out []Def
	for _, d := range defs {
		for _, b := range d.Bins {
			if b == bin {
				out = append(out, d)
			}
		}
	}
	return out
}

// lookup finds a setting by name, across binaries.
func lookup(name string) (Def, bool) {
	for _, d := range defs {
		if d.Name == name {
			return d, true
		}
	}
	return Def{}, false
}
