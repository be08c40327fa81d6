package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// HostKeyPolicy says what to do with a host key known_hosts does not vouch for.
type HostKeyPolicy string

const (
	// Strict refuses hosts not in known_hosts.
	Strict HostKeyPolicy = "strict"
	// AcceptNew records the key of a host not yet in known_hosts and
	// refuses a host whose key differs from the recorded one.
	AcceptNew HostKeyPolicy = "accept-new"
	// Off accepts any key and records nothing.
	Off HostKeyPolicy = "off"
)

// Defaults applied by Dial to zero-valued Options fields.
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 30 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	DefaultPolicy         = AcceptNew
)

// Options say how to reach and log in to one device. Fields left zero are
// filled from the operator's OpenSSH client config (see SSHConfig), then
// from the defaults.
type Options struct {
	Host string // the host as the operator names it: an ssh_config alias or an address
	// HostName is the address to connect to, when Host is an alias ("":
	// ssh_config's HostName, else Host).
	HostName string
	Port     int    // 0: 22
	User     string // "": the local user
	// ProxyJump lists jump hosts, [user@]host[:port] separated by commas,
	// reached in order; each is itself looked up in ssh_config. "none" turns
	// a ProxyJump from ssh_config off.
	ProxyJump string
	// SSHConfig is the OpenSSH client config file ("": ~/.ssh/config when
	// it exists; "none": none), read for HostName, Port, User,
	// IdentityFile, ProxyJump, UserKnownHostsFile and StrictHostKeyChecking.
	SSHConfig string
	// Password is used for password and keyboard-interactive logins and for
	// sudo -S. It never appears in errors, logs, String or JSON.
	Password string `json:"-"`
	// KeyFiles are private key files tried in order. Empty: ~/.ssh/id_ed25519,
	// ~/.ssh/id_ecdsa and ~/.ssh/id_rsa, those that exist. A listed file
	// that cannot be read is an error; an encrypted one is skipped with a
	// warning.
	KeyFiles []string
	// AgentSocket is the ssh-agent socket; "" means $SSH_AUTH_SOCK. NoAgent
	// turns the agent off.
	AgentSocket string
	NoAgent     bool
	// KnownHosts is the known_hosts file, for the device and every jump
	// host; "" means ~/.ssh/known_hosts.
	KnownHosts    string
	HostKeyPolicy HostKeyPolicy // "": accept-new
	// ConnectTimeout bounds TCP connect plus SSH handshake and login
	// (0: 30 s).
	ConnectTimeout time.Duration
	// KeepAlive is the interval of keepalive requests once connected, like
	// ServerAliveInterval (0: 15 s, negative: none). Three unanswered ones
	// close the connection.
	KeepAlive time.Duration
	// Log receives warnings (skipped keys, recorded host keys). The zero
	// value logs nothing.
	Log zerolog.Logger

	resolved bool // ssh_config and defaults applied (Dialer.Resolve)
}

// String describes the options without the password.
func (o Options) String() string {
	pw := "no"
	if o.Password != "" {
		pw = "yes"
	}
	s := fmt.Sprintf("%s@%s:%d password=%s keys=%v known_hosts=%s policy=%s",
		o.User, o.Host, o.port(), pw, o.KeyFiles, o.KnownHosts, o.policy())
	if o.HostName != "" {
		s += " hostname=" + o.HostName
	}
	if o.ProxyJump != "" {
		s += " jump=" + o.ProxyJump
	}
	return s
}

// address is the host:port to connect to.
func (o Options) address() string {
	h := o.HostName
	if h == "" {
		h = o.Host
	}
	return hostPort(h, o.port())
}

func (o Options) port() int {
	if o.Port == 0 {
		return DefaultPort
	}
	return o.Port
}

func (o Options) policy() HostKeyPolicy {
	if o.HostKeyPolicy == "" {
		return DefaultPolicy
	}
	return o.HostKeyPolicy
}

func (o Options) connectTimeout() time.Duration {
	if o.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return o.ConnectTimeout
}

func (o Options) keepAlive() time.Duration {
	if o.KeepAlive == 0 {
		return DefaultKeepAlive
	}
	return o.KeepAlive
}

func (o Options) knownHosts() (string, error) {
	if o.KnownHosts != "" {
		return expandHome(o.KnownHosts)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("known_hosts: %w", err)
	}
	return filepath.Join(home, ".ssh", "known_hosts"), nil
}

// ParsePolicy reads a host key policy: strict, accept-new or off, and the
// OpenSSH StrictHostKeyChecking words yes (strict), ask (strict) and no (off).
func ParsePolicy(s string) (HostKeyPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "strict", "yes", "ask":
		return Strict, nil
	case "accept-new":
		return AcceptNew, nil
	case "off", "no":
		return Off, nil
	}
	return "", fmt.Errorf("host key policy %q: want strict, accept-new or off", s)
}

// expandHome replaces a leading ~/ with the home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
