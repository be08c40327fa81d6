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
	kh     *knownHostsFile
	policy HostKeyPolicy
	host   string // host:port as dialled
	log    zerolog.Logger
}

// check returns nil when the key is acceptable, recording it first when
// the host is new and the policy is accept-new.
func (h *hostKeys) check(_ string, remote net.Addr, key ssh.PublicKey) error {
	if h.policy == Off {
		return nil
	}
	res, err := h.kh.check(h.host, remote, key)
	if err != nil {
		return withClass(ErrHostKey, fmt.Errorf("known_hosts %s: %w", h.kh.path, err))
	}
	if !res.ok && !res.revoked && len(res.want) == 0 && h.policy == AcceptNew {
		return h.record(remote, key)
	}
	return h.judge(res, key)
}

// judge turns a lookup into the verdict for a host that is not to be
// recorded.
func (h *hostKeys) judge(res lookup, key ssh.PublicKey) error {
	switch {
	case res.revoked:
		return h.refuse(key, "key is marked @revoked in "+h.kh.path)
	case res.ok:
		return nil
	case len(res.want) > 0:
		return &HostKeyError{Host: knownhosts.Normalize(h.host), KnownHosts: h.kh.path,
			Fingerprint: ssh.FingerprintSHA256(key), Changed: true, Line: res.want[0].Line}
	}
	return h.refuse(key, "host not in "+h.kh.path+" and policy is strict")
}

func (h *hostKeys) refuse(key ssh.PublicKey, reason string) error {
	return &HostKeyError{Host: knownhosts.Normalize(h.host), KnownHosts: h.kh.path,
		Fingerprint: ssh.FingerprintSHA256(key), Reason: reason}
}

// record appends the key of a first-seen host. Under an exclusive lock on
// the file, which every worker of this machine takes before appending, it
// reads what others appended meanwhile and judges the key against that
// when the host turned up; else it appends the line with a single write and
// fsyncs, so concurrent workers never lose or interleave lines and never
// both record different keys. The lock is taken on a descriptor opened for
// writing, which is what NFS needs to honour it across machines.
func (h *hostKeys) record(remote net.Addr, key ssh.PublicKey) error {
	file := h.kh.path
	if file == os.DevNull {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key: %w", err))
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key: %w", err))
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("lock %s: %w", file, err))
	}
	res, err := h.kh.check(h.host, remote, key)
	if err != nil {
		return withClass(ErrHostKey, fmt.Errorf("known_hosts %s: %w", file, err))
	}
	if res.ok || res.revoked || len(res.want) > 0 {
		return h.judge(res, key) // recorded meanwhile
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(h.host)}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 && !endsWithNewline(f, st.Size()) {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key in %s: %w", file, err))
	}
	if err := f.Sync(); err != nil {
		return withClass(ErrHostKey, fmt.Errorf("record host key in %s: %w", file, err))
	}
	h.log.Info().Str("host", h.host).Str("key", ssh.FingerprintSHA256(key)).Str("known_hosts", file).
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
	// A key no file holds gets every known key of the host listed.
	res, err := h.kh.check(h.host, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	if err != nil {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range res.want {
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
