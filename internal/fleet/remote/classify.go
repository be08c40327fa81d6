package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Error classes. Every error this package returns wraps exactly one of them;
// test with errors.Is.
var (
	ErrDNS         = errors.New("dns")
	ErrRefused     = errors.New("refused")
	ErrUnreachable = errors.New("unreachable")
	ErrAuth        = errors.New("auth")
	ErrHostKey     = errors.New("host_key")
	ErrTimeout     = errors.New("timeout")
	ErrTransfer    = errors.New("transfer")
)

// classes lists the classes.
func classes() []error {
	return []error{ErrHostKey, ErrAuth, ErrTimeout, ErrDNS, ErrRefused, ErrUnreachable, ErrTransfer}
}

// classError is an error of one class: its text is the cause's text, and
// errors.Is finds both the class and everything the cause wraps.
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.class, e.err} }

// hasClass reports whether err wraps one of the classes.
func hasClass(err error) bool {
	for _, c := range classes() {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// withClass wraps err in class unless it already has a class.
func withClass(class, err error) error {
	if err == nil || hasClass(err) {
		return err
	}
	return &classError{class: class, err: err}
}

// classifyNet gives a connection-level error its class: context deadlines
// and network timeouts are timeout, name lookups dns, ECONNREFUSED refused,
// missing routes unreachable, and x/crypto's "unable to authenticate" auth.
// Errors that already carry a class (host keys) keep it; anything else is
// returned with fallback, or unchanged when fallback is nil.
func classifyNet(err error, fallback error) error {
	if err == nil || hasClass(err) {
		return err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	var chanErr *ssh.OpenChannelError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return withClass(ErrTimeout, err)
	case errors.As(err, &dnsErr):
		return withClass(ErrDNS, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return withClass(ErrRefused, err)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return withClass(ErrUnreachable, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return withClass(ErrTimeout, err)
	case errors.As(err, &chanErr):
		// A jump host could not reach the next hop; sshd says why in text.
		return withClass(jumpClass(chanErr.Message), err)
	case strings.Contains(err.Error(), "unable to authenticate"):
		// x/crypto/ssh reports an exhausted authentication only in text.
		return withClass(ErrAuth, err)
	}
	if fallback != nil {
		return withClass(fallback, err)
	}
	return err
}

// jumpClass reads the reason OpenSSH's sshd gives for a forwarding it
// could not open (strerror or gai_strerror text).
func jumpClass(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "refused"):
		return ErrRefused
	case strings.Contains(m, "timed out"):
		return ErrTimeout
	case strings.Contains(m, "name or service not known"), strings.Contains(m, "name resolution"),
		strings.Contains(m, "nodename nor servname"), strings.Contains(m, "no address associated"):
		return ErrDNS
	}
	return ErrUnreachable
}

// classify is classifyNet for the error of work bounded by ctx: an
// unclassified error that ended with ctx also names ctx's error, so a
// deadline makes it a timeout.
func classify(ctx context.Context, err, fallback error) error {
	if err != nil && !hasClass(err) && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return classifyNet(err, fallback)
}

// HostKeyError is a host key the policy refuses. Changed is true when
// known_hosts holds a different key for the host (never accepted, whatever
// the policy short of off); false when the host is unknown under strict, or
// the key is revoked.
type HostKeyError struct {
	Host        string // as written in known_hosts: host or [host]:port
	KnownHosts  string // file consulted
	Fingerprint string // SHA256 fingerprint of the key the server offered
	Changed     bool
	Line        int // known_hosts line of the conflicting key when Changed
	Reason      string
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key for %s changed (server offers %s; %s:%d holds another key): refusing to connect; if the device was reinstalled, remove that line",
			e.Host, e.Fingerprint, e.KnownHosts, e.Line)
	}
	return fmt.Sprintf("host key %s for %s refused: %s", e.Fingerprint, e.Host, e.Reason)
}

// Is makes errors.Is(err, ErrHostKey) true for a HostKeyError.
func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }
