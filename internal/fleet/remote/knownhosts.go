package remote

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsFile is one known_hosts file as this process knows it. The file
// is parsed once (by x/crypto's knownhosts); lines appended to it later,
// by this process or by other workers, are read and parsed on their own
// (the tail), so a fleet of new devices recorded one by one costs one
// parse of the file per process instead of one per dial. Only a file that
// shrank or was replaced is parsed again.
type knownHostsFile struct {
	path string

	mu    sync.Mutex
	s     parsed
	loads int // full parses, for tests
}

// parsed is what was read of the file.
type parsed struct {
	dev, ino uint64              // identity of the file parsed
	size     int64               // bytes consumed: the parse plus whole tail lines
	lines    int                 // lines consumed, for line numbers in the tail
	base     ssh.HostKeyCallback // nil when the file was absent
	tail     []knownLine
}

// knownLine is a line of the tail.
type knownLine struct {
	revoked  bool
	patterns []string
	key      knownhosts.KnownKey
}

// lookup is what the file says about a host's key.
type lookup struct {
	ok      bool                  // a line for the host holds the key
	revoked bool                  // the key is @revoked
	want    []knownhosts.KnownKey // the host's keys, when the key is not among them
}

// check looks key up for host ("host:port" as dialled), reading what was
// appended since the last look.
func (f *knownHostsFile) check(host string, remote net.Addr, key ssh.PublicKey) (lookup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refresh(); err != nil {
		return lookup{}, err
	}
	var res lookup
	if f.s.base != nil {
		err := f.s.base(host, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			res.ok = true
		case errors.As(err, &re):
			return lookup{revoked: true}, nil
		case errors.As(err, &ke):
			res.want = ke.Want
		default:
			return lookup{}, err
		}
	}
	name := knownhosts.Normalize(host)
	blob := key.Marshal()
	for _, l := range f.s.tail {
		same := bytes.Equal(l.key.Key.Marshal(), blob)
		switch {
		case l.revoked && same:
			return lookup{revoked: true}, nil
		case l.revoked || !matchHost(l.patterns, name):
		case same:
			res.ok = true
		default:
			res.want = append(res.want, l.key)
		}
	}
	if res.ok {
		res.want = nil
	}
	return res, nil
}

// refresh brings the parsed state up to the file on disk.
func (f *knownHostsFile) refresh() error {
	st, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		f.s = parsed{}
		return nil
	}
	if err != nil {
		return err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	var dev, ino uint64
	if sys != nil {
		dev, ino = uint64(sys.Dev), sys.Ino
	}
	same := f.s.base != nil && dev == f.s.dev && ino == f.s.ino
	switch {
	case same && st.Size() == f.s.size:
		return nil
	case same && st.Size() > f.s.size:
		return f.readTail(st.Size())
	}
	return f.load(dev, ino)
}

// load parses the whole file.
func (f *knownHostsFile) load(dev, ino uint64) error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	cb, err := knownhosts.New(f.path)
	if err != nil {
		return err
	}
	// Bytes after the last newline are a line still being written: the
	// tail reads it once it is complete. (A line appended between the two
	// reads above is parsed twice, which changes no verdict.)
	whole := bytes.LastIndexByte(data, '\n') + 1
	f.s = parsed{dev: dev, ino: ino, size: int64(whole), lines: bytes.Count(data, []byte{'\n'}), base: cb}
	f.loads++
	return nil
}

// readTail parses the whole lines appended since the last look.
func (f *knownHostsFile) readTail(size int64) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	data := make([]byte, size-f.s.size)
	if _, err := fh.ReadAt(data, f.s.size); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	f.s.size += int64(len(data))
	for line := range bytes.Lines(data) {
		f.s.lines++
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
		if err != nil || marker == "cert-authority" {
			// Comments and blank lines; CA lines count from the next start.
			continue
		}
		f.s.tail = append(f.s.tail, knownLine{revoked: marker == "revoked", patterns: hosts,
			key: knownhosts.KnownKey{Key: key, Filename: f.path, Line: f.s.lines}})
	}
	return nil
}

// matchHost reports whether a known_hosts host list (plain names with * and
// ? wildcards, !negations, |1|salt|hash hashed names) names host, written
// as knownhosts.Normalize writes it.
func matchHost(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		var hit bool
		if strings.HasPrefix(p, "|1|") {
			hit = hashedMatch(p, host)
		} else {
			hit = wildcard(p, host)
		}
		if hit && neg {
			return false
		}
		matched = matched || hit
	}
	return matched
}

// wildcard matches s against p, in which * stands for any run of
// characters and ? for one (known_hosts has no other special characters).
func wildcard(p, s string) bool {
	star, resume := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && (p[i] == '?' || p[i] == s[j]):
			i++
			j++
		case i < len(p) && p[i] == '*':
			star, resume = i, j
			i++
		case star >= 0:
			resume++
			i, j = star+1, resume
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// hashedMatch checks a "|1|salt|hash" entry: hash is HMAC-SHA1 of the host
// keyed with salt, both base64, as OpenSSH's HashKnownHosts writes them.
func hashedMatch(entry, host string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), want)
}

// knownHosts keeps one knownHostsFile per path for a Dialer.
type knownHosts struct {
	mu    sync.Mutex
	files map[string]*knownHostsFile
}

func (k *knownHosts) file(p string) *knownHostsFile {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.files == nil {
		k.files = map[string]*knownHostsFile{}
	}
	f, ok := k.files[p]
	if !ok {
		f = &knownHostsFile{path: p}
		k.files[p] = f
	}
	return f
}
