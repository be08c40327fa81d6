package remote

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kevinburke/ssh_config"
)

// sshConfigs keeps the OpenSSH client config files a Dialer read, each
// parsed once.
type sshConfigs struct {
	mu    sync.Mutex
	files map[string]*ssh_config.Config // nil value: the file does not exist
}

// get parses the file on first use; a missing file is an empty config.
func (s *sshConfigs) get(path string) (*ssh_config.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.files[path]; ok {
		return c, nil
	}
	var cfg *ssh_config.Config
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		defer f.Close()
		if cfg, err = ssh_config.Decode(f); err != nil {
			return nil, err
		}
	}
	if s.files == nil {
		s.files = map[string]*ssh_config.Config{}
	}
	s.files[path] = cfg
	return cfg, nil
}

// sshConfigPath is the client config file for o: Options.SSHConfig, else
// ~/.ssh/config; "" when turned off with "none".
func (o Options) sshConfigPath() (string, error) {
	switch o.SSHConfig {
	case "none":
		return "", nil
	case "":
		home, err := os.UserHomeDir()
		if err != nil {
			return "", nil // no home, no user config
		}
		return filepath.Join(home, ".ssh", "config"), nil
	}
	return expandHome(o.SSHConfig)
}

// applySSHConfig fills the fields o leaves unset from the OpenSSH client
// config's entries for o.Host (Host patterns, first value wins, as ssh(1)
// reads them): HostName, Port, User, IdentityFile, ProxyJump,
// UserKnownHostsFile and StrictHostKeyChecking. IdentityFile entries are
// tried after the files o names. A malformed value is an error naming the
// file and the keyword.
func (d *Dialer) applySSHConfig(o Options) (Options, error) {
	path, err := o.sshConfigPath()
	if err != nil || path == "" {
		return o, err
	}
	cfg, err := d.configs.get(path)
	if err != nil {
		return o, fmt.Errorf("ssh config %s: %w", path, err)
	}
	if cfg == nil {
		return o, nil
	}
	alias := o.Host
	get := func(key string) string {
		v, _ := cfg.Get(alias, key)
		return strings.TrimSpace(v)
	}
	bad := func(key, val string, err error) error {
		return fmt.Errorf("ssh config %s, %s %q for host %s: %w", path, key, val, alias, err)
	}
	if v := get("HostName"); v != "" && o.HostName == "" {
		o.HostName = strings.ReplaceAll(v, "%h", alias)
	}
	if v := get("Port"); v != "" && o.Port == 0 {
		if o.Port, err = port(v); err != nil {
			return o, bad("Port", v, err)
		}
	}
	if v := get("User"); v != "" && o.User == "" {
		o.User = v
	}
	if v := get("ProxyJump"); v != "" && o.ProxyJump == "" {
		o.ProxyJump = v
	}
	if v := get("UserKnownHostsFile"); v != "" && o.KnownHosts == "" {
		o.KnownHosts = strings.Fields(v)[0]
	}
	if v := get("StrictHostKeyChecking"); v != "" && o.HostKeyPolicy == "" {
		if o.HostKeyPolicy, err = ParsePolicy(v); err != nil {
			return o, bad("StrictHostKeyChecking", v, err)
		}
	}
	files, _ := cfg.GetAll(alias, "IdentityFile")
	for _, f := range files {
		o.KeyFiles = append(o.KeyFiles[:len(o.KeyFiles):len(o.KeyFiles)], expandTokens(strings.TrimSpace(f), alias, o.User))
	}
	return o, nil
}

// expandTokens expands the ssh_config tokens an IdentityFile may use: %d
// (home), %h (host), %r (remote user), %u (local user), %%.
func expandTokens(s, host, remoteUser string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	home, _ := os.UserHomeDir()
	local := ""
	if me, err := user.Current(); err == nil {
		local = me.Username
	}
	r := strings.NewReplacer("%%", "%", "%d", home, "%h", host, "%r", remoteUser, "%u", local)
	return r.Replace(s)
}

// jumpHost is one hop of a ProxyJump list: [user@]host[:port].
type jumpHost struct {
	user, host string
	port       int
}

// parseJumps reads a ProxyJump value: comma-separated [user@]host[:port]
// (also ssh://[user@]host[:port]); "none" or "" is no jump.
func parseJumps(s string) ([]jumpHost, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var hops []jumpHost
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimPrefix(strings.TrimSpace(h), "ssh://")
		var j jumpHost
		if at := strings.LastIndexByte(h, '@'); at >= 0 {
			j.user, h = h[:at], h[at+1:]
		}
		j.host = h
		if host, p, err := splitHostPort(h); err == nil {
			j.host = host
			if j.port, err = port(p); err != nil {
				return nil, fmt.Errorf("jump host %q: %w", h, err)
			}
		}
		if j.host == "" {
			return nil, fmt.Errorf("jump host %q: no host name", h)
		}
		hops = append(hops, j)
	}
	return hops, nil
}

// splitHostPort splits host:port and [host]:port; a bare host (also a
// bare IPv6 address) is an error.
func splitHostPort(s string) (string, string, error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]:")
		if end < 0 {
			return "", "", errors.New("no port")
		}
		return s[1:end], s[end+2:], nil
	}
	if strings.Count(s, ":") != 1 {
		return "", "", errors.New("no port")
	}
	host, p, _ := strings.Cut(s, ":")
	return host, p, nil
}
