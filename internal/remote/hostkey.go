package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/unix"
)

// hostKeys checks a server's host key against a known_hosts file under a
// policy.
type hostKeys struct {
	file   string
	policy HostKeyPolicy
	host   string // host:port as dialled
	log    zerolog.Logger
}

// check loads known_hosts afresh (another worker may have recorded the key
// meanwhile) and returns nil when the key is acceptable.
func (h *hostKeys) check(_ string, remote net.Addr, key ssh.PublicKey) error {
	if h.policy == Off {
		return nil
	}
	err := h.lookup(remote, key)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return &HostKeyError{Host: knownhosts.Normalize(h.host), KnownHosts: h.file,
			Fingerprint: ssh.FingerprintSHA256(key), Changed: true, Line: ke.Want[0].Line}
	case errors.As(err, &ke) && h.policy == AcceptNew:
		return h.record(remote, key)
	case errors.As(err, &ke):
		return h.refuse(key, "host not in "+h.file+" and policy is strict")
	}
	var re *knownhosts.RevokedError
	if errors.As(err, &re) {
		return h.refuse(key, "key is marked @revoked in "+h.file)
	}
	return withClass(ErrHostKey, fmt.Errorf("known_hosts %s: %w", h.file, err))
}

func (h *hostKeys) refuse(key ssh.PublicKey, reason string) error {
	return &HostKeyError{Host: knownhosts.Normalize(h.host), KnownHosts: h.file,
		Fingerprint: ssh.FingerprintSHA256(key), Reason: reason}
}

// lookup checks key against the file; a missing file knows no host.
func (h *hostKeys) lookup(remote net.Addr, key ssh.PublicKey) error {
	if _, err := os.Stat(h.file); errors.Is(err, os.ErrNotExist) {
		return &knownhosts.KeyError{}
	}
	cb, err := knownhosts.New(h.file)
	if err != nil {
		return err
	}
	return cb(h.host, remote, key)
}

// record appends the key of a first-seen host. Under an exclusive lock on
// the file it checks again that no key was recorded meanwhile, then appends
// the line with a single write and fsyncs, so concurrent workers never lose
// or interleave lines and never both record different keys.
func (h *hostKeys) record(remote net.Addr, key ssh.PublicKey) error {
	if h.file == os.DevNull {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key: %w", err))
	}
	f, err := os.OpenFile(h.file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key: %w", err))
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("lock %s: %w", h.file, err))
	}
	var ke *knownhosts.KeyError
	if err := h.lookup(remote, key); err == nil || !errors.As(err, &ke) || len(ke.Want) > 0 {
		return h.check("", remote, key) // recorded meanwhile: judge against it
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(h.host)}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 && !endsWithNewline(f, st.Size()) {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key in %s: %w", h.file, err))
	}
	if err := f.Sync(); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key in %s: %w", h.file, err))
	}
	h.log.Info().Str("host", h.host).Str("key", ssh.FingerprintSHA256(key)).Str("known_hosts", h.file).
		Msg("new host key recorded")
	return nil
}

func endsWithNewline(f *os.File, size int64) bool {
	b := make([]byte, 1)
	_, err := f.ReadAt(b, size-1)
	return err == nil && b[0] == '\n'
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for the host, so the handshake asks for a key type we can verify
// instead of one that would look like a changed key. Nil when none are known.
func (h *hostKeys) knownAlgorithms() []string {
	if h.policy == Off {
		return nil
	}
	if _, err := os.Stat(h.file); err != nil {
		return nil
	}
	cb, err := knownhosts.New(h.file)
	if err != nil {
		return nil
	}
	// A key no file holds makes the callback list every known key.
	err = cb(h.host, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key that matches nothing.
type probeKey struct{}

func (probeKey) Type() string                            { return "probe" }
func (probeKey) Marshal() []byte                         { return []byte("probe-key-matches-nothing") }
func (probeKey) Verify(_ []byte, _ *ssh.Signature) error { return errors.New("probe key") }

var _ ssh.PublicKey = probeKey{}

func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
