// Package netsim puts a simulated wide-area network between two local
// endpoints: a TCP proxy that delays every byte by a one-way latency and
// holds it to byte rates, where a rate may be shared by several proxies
// (a host's uplink that every device connection crosses). This kernel has
// no netem, and the project's WAN benchmark needs exactly these two things.
package netsim

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a byte rate, shared by every proxy given the same Rate.
type Rate struct{ l *rate.Limiter }

// Mbit is a rate of n megabits per second.
func Mbit(n float64) Rate {
	bps := n * 1e6 / 8
	return Rate{rate.NewLimiter(rate.Limit(bps), chunk)}
}

// chunk is the most bytes moved at once; it is also the burst a Rate allows.
const chunk = 16 << 10

// Proxy forwards connections from its address to a target through the
// simulated path.
type Proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	rates  []Rate
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// Start listens on a loopback port and forwards to target with a one-way
// delay (each direction) and the given rates (each direction).
func Start(target string, delay time.Duration, rates ...Rate) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, delay: delay, rates: rates, ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where to connect.
func (p *Proxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	select {
	case <-done:
	case <-p.ctx.Done():
	}
}

// pipe copies src to dst: each chunk waits for the rates as it is read and
// is written delay later, so a long transfer is held to the rate while
// the latency is paid once, as on a real path.
func (p *Proxy) pipe(dst, src net.Conn) {
	type piece struct {
		at   time.Time
		data []byte
	}
	q := make(chan piece, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, chunk)
			n, err := src.Read(buf)
			if n > 0 {
				for _, r := range p.rates {
					if r.l.WaitN(p.ctx, n) != nil {
						return
					}
				}
				q <- piece{time.Now().Add(p.delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for pc := range q {
		if d := time.Until(pc.at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(pc.data); err != nil {
			break
		}
	}
	// Half-close so the other side sees the end of this direction.
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
	io.Copy(io.Discard, src)
}
