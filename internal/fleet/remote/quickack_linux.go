package remote

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckConn acknowledges received data at once. OpenSSH's sshd leaves
// Nagle's algorithm on for non-interactive sessions, so a small reply it
// writes right after another one waits for our ACK; with delayed ACKs that
// costs ~40 ms per exchange (most visibly, opening the first session).
// Linux falls back to delayed ACKs by itself, so the option is renewed
// after every read.
type quickAckConn struct {
	net.Conn
	raw syscall.RawConn
}

func quickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, raw: raw}
}

func (q *quickAckConn) Read(p []byte) (int, error) {
	n, err := q.Conn.Read(p)
	q.raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return n, err
}
