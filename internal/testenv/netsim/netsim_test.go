package netsim

import (
	"io"
	"net"
	"testing"
	"time"
)

// sink accepts one connection and counts what it reads until EOF.
func sink(t *testing.T) (string, chan int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	return ln.Addr().String(), got
}

func TestRateAndLatency(t *testing.T) {
	addr, got := sink(t)
	p, err := Start(addr, 50*time.Millisecond, Mbit(8)) // 1 MB/s
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Write(make([]byte, 1<<20))
	c.(*net.TCPConn).CloseWrite()
	n := <-got
	took := time.Since(start)
	c.Close()
	if n != 1<<20 {
		t.Fatalf("delivered %d bytes", n)
	}
	// 1 MiB at 1 MB/s plus 50 ms: about 1.1 s; never much faster.
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("1 MiB at 8 Mbit/s with 50 ms latency took %v", took)
	}
}

func TestSharedRateIsShared(t *testing.T) {
	uplink := Mbit(8)
	var chans []chan int64
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		addr, got := sink(t)
		p, err := Start(addr, 0, uplink)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		chans, conns = append(chans, got), append(conns, c)
	}
	start := time.Now()
	for _, c := range conns {
		go func(c net.Conn) { c.Write(make([]byte, 512<<10)); c.(*net.TCPConn).CloseWrite() }(c)
	}
	for _, ch := range chans {
		<-ch
	}
	// 1 MiB in all through one 1 MB/s uplink: about a second, not half.
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("two connections through one shared 8 Mbit/s rate took %v", took)
	}
}
