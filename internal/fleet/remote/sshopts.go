package remote

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WithSSHOpts returns o changed by the OpenSSH command-line options in s, the
// way operators write them in MIG_SSH_OPTS / --ssh-opts, e.g.
//
//	-o StrictHostKeyChecking=no -i ~/.ssh/fleet -p 2222 -oConnectTimeout=10
//
// s is split like a shell would (quotes, backslashes). Understood:
// -o StrictHostKeyChecking, UserKnownHostsFile, IdentityFile, ConnectTimeout,
// ServerAliveInterval, Port, User, HostName, ProxyJump (as -o Key=Value,
// -oKey=Value, -o Key Value or -o "Key Value"), and -i FILE, -p PORT,
// -l USER, -J JUMPS, -F CONFIG (also -iFILE ...).
// Identity files are tried before those already in o. Anything else is
// ignored with a warning in the returned list, for the caller to log. A
// malformed value is an error naming the option. Calling it again with more
// options applies them on top: later values win.
func (o Options) WithSSHOpts(s string) (Options, []string, error) {
	args, err := splitShell(s)
	if err != nil {
		return o, nil, fmt.Errorf("ssh options: %w", err)
	}
	p := optParser{opts: o, args: args}
	for p.i < len(p.args) {
		if err := p.next(); err != nil {
			return o, nil, fmt.Errorf("ssh options: %w", err)
		}
	}
	if len(p.keys) > 0 {
		p.opts.KeyFiles = append(p.keys, o.KeyFiles...)
	}
	return p.opts, p.warnings, nil
}

type optParser struct {
	opts     Options
	args     []string
	i        int
	keys     []string
	warnings []string
}

// sshFlagsWithArg are the ssh(1) flags taking an argument that we ignore; the
// argument is skipped with them.
const sshFlagsWithArg = "BbcDEeILmOQRSWw"

// take returns the value of flag: the rest of the word, or the next word.
func (p *optParser) take(word string) (string, error) {
	if len(word) > 2 {
		return word[2:], nil
	}
	if p.i >= len(p.args) {
		return "", fmt.Errorf("%s needs a value", word)
	}
	p.i++
	return p.args[p.i-1], nil
}

func (p *optParser) next() error {
	word := p.args[p.i]
	p.i++
	if len(word) < 2 || word[0] != '-' {
		p.warnings = append(p.warnings, fmt.Sprintf("ssh option %q ignored: not an option", word))
		return nil
	}
	flag := word[1]
	switch {
	case flag == 'o':
		v, err := p.take(word)
		if err != nil {
			return err
		}
		return p.option(v)
	case strings.IndexByte("iplJF", flag) >= 0:
		v, err := p.take(word)
		if err != nil {
			return err
		}
		key := map[byte]string{'i': "identityfile", 'p': "port", 'l': "user", 'J': "proxyjump", 'F': "-f"}[flag]
		return p.set(key, "-"+string(flag), v)
	case strings.IndexByte(sshFlagsWithArg, flag) >= 0:
		if _, err := p.take(word); err != nil {
			return err
		}
	}
	p.warnings = append(p.warnings, fmt.Sprintf("ssh option %s ignored: not supported", word))
	return nil
}

// option handles the argument of -o: Key=Value, "Key Value", or Key followed
// by the value as the next word.
func (p *optParser) option(kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok {
		key, val, ok = strings.Cut(strings.TrimSpace(kv), " ")
	}
	if !ok {
		if p.i >= len(p.args) {
			return fmt.Errorf("-o %s needs a value", kv)
		}
		val = p.args[p.i]
		p.i++
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	return p.set(strings.ToLower(key), "-o "+key, val)
}

// set applies one option; name is how the operator wrote it, for messages.
func (p *optParser) set(key, name, val string) error {
	var err error
	switch key {
	case "stricthostkeychecking":
		p.opts.HostKeyPolicy, err = ParsePolicy(val)
	case "userknownhostsfile":
		// OpenSSH allows several files; the first is the one we read and write.
		if f := strings.Fields(val); len(f) > 0 {
			p.opts.KnownHosts = f[0]
		} else {
			err = errors.New("empty file name")
		}
	case "identityfile":
		if val == "" {
			err = errors.New("empty file name")
		}
		p.keys = append(p.keys, val)
	case "connecttimeout":
		p.opts.ConnectTimeout, err = seconds(val, 1)
	case "serveraliveinterval":
		p.opts.KeepAlive, err = seconds(val, 0)
		if err == nil && p.opts.KeepAlive == 0 {
			p.opts.KeepAlive = -1 // 0 turns keepalives off, as in OpenSSH
		}
	case "port":
		p.opts.Port, err = port(val)
	case "user":
		if val == "" {
			err = errors.New("empty user name")
		}
		p.opts.User = val
	case "hostname":
		if val == "" {
			err = errors.New("empty host name")
		}
		p.opts.HostName = val
	case "proxyjump":
		_, err = parseJumps(val)
		p.opts.ProxyJump = val
	case "-f": // -F: the client config file
		if val == "" {
			err = errors.New("empty file name")
		}
		p.opts.SSHConfig = val
	default:
		p.warnings = append(p.warnings, fmt.Sprintf("ssh option %s=%s ignored: not supported", name, val))
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", name, val, err)
	}
	return nil
}

func seconds(s string, min int) (time.Duration, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > 86400*365 {
		return 0, fmt.Errorf("want a whole number of seconds ≥ %d", min)
	}
	return time.Duration(n) * time.Second, nil
}

func port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("want a port number 1-65535")
	}
	return n, nil
}

// splitShell splits s into words as sh would, without expansions: blanks
// separate words, '…' quotes literally, "…" quotes with \ escaping \ " $ `,
// and a backslash outside quotes escapes the next character.
func splitShell(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			n, err := doubleQuoted(s[i+1:], &cur)
			if err != nil {
				return nil, err
			}
			i += n + 1
		default:
			cur.WriteByte(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// doubleQuoted copies the inside of a "…" quote starting at s into b and
// returns the index of the closing quote.
func doubleQuoted(s string, b *strings.Builder) (int, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, nil
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0:
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return 0, errors.New("unterminated \" quote")
}
