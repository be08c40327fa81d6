package remote

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/usage"
	"golang.org/x/crypto/ssh"
)

// DefaultJumpLogins is how many logins to one jump host a Dialer runs at
// once: below the 10 unauthenticated connections OpenSSH's sshd accepts
// by default (MaxStartups) before it drops new ones.
const DefaultJumpLogins = 8

// maxJumps bounds a ProxyJump chain (jump hosts may name jump hosts).
const maxJumps = 8

// Dialer connects to devices, sharing across its dials what one worker
// process should do once: each known_hosts and ssh_config file is parsed
// once (known_hosts lines appended later are read on their own), and
// logins to each jump host are capped. The zero value is ready; use one
// per process.
type Dialer struct {
	// JumpLogins caps the logins to one jump host in progress at once (0:
	// DefaultJumpLogins). Established connections do not count: sshd's
	// MaxStartups limits only connections not yet logged in.
	JumpLogins int

	known   knownHosts
	configs sshConfigs

	mu    sync.Mutex
	gates map[string]chan struct{} // by jump host address
}

// Dial connects with a Dialer of its own, sharing nothing with other dials.
func Dial(ctx context.Context, o Options) (*Client, error) {
	return new(Dialer).Dial(ctx, o)
}

// Resolve completes o as Dial uses it: the OpenSSH client config's entries
// for o.Host fill the fields o leaves unset, then the defaults fill the
// rest (user, port). A bad config is a usage error.
func (d *Dialer) Resolve(o Options) (Options, error) {
	if o.resolved {
		return o, nil
	}
	if o.Host == "" {
		return o, usage.Errorf("ssh: no host given")
	}
	o, err := d.applySSHConfig(o)
	if err != nil {
		return o, usage.Wrap(err)
	}
	return o.withDefaults()
}

// withDefaults checks the jump list and fills user and port.
func (o Options) withDefaults() (Options, error) {
	if _, err := parseJumps(o.ProxyJump); err != nil {
		return o, usage.Errorf("ssh ProxyJump %q: %w", o.ProxyJump, err)
	}
	if o.User == "" {
		u, err := user.Current()
		if err != nil {
			return o, fmt.Errorf("ssh: no user given: %w", err)
		}
		o.User = u.Username
	}
	o.Port = o.port()
	o.resolved = true
	return o, nil
}

// Dial connects to the device, through its jump hosts if it has any,
// checks every host key and logs in, each hop within the connect timeout
// (and ctx). Errors carry the classes ErrDNS, ErrRefused, ErrUnreachable,
// ErrTimeout, ErrHostKey or ErrAuth; a failing jump host is named.
func (d *Dialer) Dial(ctx context.Context, o Options) (*Client, error) {
	o, err := d.Resolve(o)
	if err != nil {
		return nil, err
	}
	hops, err := d.jumpChain(o, o, 0)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: o, stop: make(chan struct{})}
	var via *ssh.Client
	for _, h := range hops {
		jc, _, err := d.login(ctx, h, via, c, true)
		if err != nil {
			c.closeAll()
			return nil, fmt.Errorf("jump host %s: %w", h.Host, err)
		}
		c.jumps = append(c.jumps, jc)
		via = jc
	}
	conn, auth, err := d.login(ctx, o, via, c, false)
	if err != nil {
		c.closeAll()
		return nil, err
	}
	c.conn, c.auth = conn, auth
	if ka := o.keepAlive(); ka > 0 {
		go c.keepAlive(ka)
	}
	return c, nil
}

// closeAll undoes a Dial that failed half-way.
func (c *Client) closeAll() {
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	for _, f := range c.cleanup {
		f()
	}
}

// jumpChain lists the hosts to pass through to reach o, outermost first.
// As with ssh -J a,b: a is reached as its own ssh_config says (through its
// own jump hosts, if any), b through a. Jump hosts share o's known_hosts,
// policy, timeouts and agent; they log in with their own ssh_config
// identity files, else the device's key files, never with its password.
// dev is the device's options, o the host whose jump hosts are listed.
func (d *Dialer) jumpChain(dev, o Options, depth int) ([]Options, error) {
	jumps, _ := parseJumps(o.ProxyJump)
	if depth+len(jumps) > maxJumps {
		return nil, usage.Errorf("ssh ProxyJump: more than %d jump hosts (a loop in ssh_config?)", maxJumps)
	}
	var chain []Options
	for i, j := range jumps {
		h := Options{Host: j.host, Port: j.port, User: j.user, SSHConfig: dev.SSHConfig,
			AgentSocket: dev.AgentSocket, NoAgent: dev.NoAgent, ConnectTimeout: dev.ConnectTimeout,
			KeepAlive: -1, Log: dev.Log}
		if i > 0 {
			h.ProxyJump = "none" // reached through the hop before it
		}
		h, err := d.applySSHConfig(h)
		if err != nil {
			return nil, usage.Wrap(err)
		}
		if len(h.KeyFiles) == 0 {
			h.KeyFiles = dev.KeyFiles
		}
		if h.KnownHosts == "" {
			h.KnownHosts = dev.KnownHosts
		}
		if h.HostKeyPolicy == "" {
			h.HostKeyPolicy = dev.HostKeyPolicy
		}
		if h, err = h.withDefaults(); err != nil {
			return nil, err
		}
		if i == 0 {
			outer, err := d.jumpChain(dev, h, depth+len(jumps))
			if err != nil {
				return nil, err
			}
			chain = append(chain, outer...)
		}
		chain = append(chain, h)
	}
	return chain, nil
}

// login connects to o (through via, else over TCP) and logs in. Cleanup
// work (the agent connection) goes to c.
func (d *Dialer) login(ctx context.Context, o Options, via *ssh.Client, c *Client, jump bool) (*ssh.Client, string, error) {
	addr := o.address()
	cfg, st, err := d.clientConfig(o, addr)
	if err != nil {
		return nil, "", err
	}
	if st.agent != nil {
		c.cleanup = append(c.cleanup, st.agent.Close)
	}
	if !jump {
		check := cfg.HostKeyCallback
		cfg.HostKeyCallback = func(host string, remote net.Addr, key ssh.PublicKey) error {
			err := check(host, remote, key)
			if err == nil {
				c.hostKey = key
			}
			return err
		}
	}
	if jump {
		release, err := d.gate(ctx, addr)
		if err != nil {
			return nil, "", withClass(ErrTimeout, fmt.Errorf("waiting for a login slot on %s: %w", addr, err))
		}
		defer release()
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		if via != nil {
			return via.DialContext(ctx, "tcp", addr)
		}
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", addr)
	}
	conn, err := handshake(ctx, dial, addr, cfg, o.connectTimeout())
	if err != nil {
		return nil, "", fmt.Errorf("ssh %s@%s: %w", o.User, addr, err)
	}
	auth, _ := st.last.Load().(string)
	return conn, auth, nil
}

// gate takes one of the login slots of a jump host; release gives it back.
func (d *Dialer) gate(ctx context.Context, addr string) (release func(), err error) {
	d.mu.Lock()
	if d.gates == nil {
		d.gates = map[string]chan struct{}{}
	}
	g, ok := d.gates[addr]
	if !ok {
		n := d.JumpLogins
		if n <= 0 {
			n = DefaultJumpLogins
		}
		g = make(chan struct{}, n)
		d.gates[addr] = g
	}
	d.mu.Unlock()
	select {
	case g <- struct{}{}:
		return func() { <-g }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *Dialer) clientConfig(o Options, addr string) (*ssh.ClientConfig, *authState, error) {
	khFile, err := o.knownHosts()
	if err != nil {
		return nil, nil, withClass(ErrHostKey, err)
	}
	policy := o.policy()
	if _, err := ParsePolicy(string(policy)); err != nil {
		return nil, nil, withClass(ErrHostKey, err)
	}
	hk := &hostKeys{kh: d.known.file(khFile), policy: policy, host: addr, log: o.Log}
	st := &authState{}
	methods, err := o.authMethods(st)
	if err != nil {
		return nil, nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              o.User,
		Auth:              methods,
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.knownAlgorithms(),
		Timeout:           o.connectTimeout(),
		ClientVersion:     "SSH-2.0-balena-migrate",
	}
	cfg.Ciphers = preferredCiphers()
	return cfg, st, nil
}

// handshake connects with dial and runs the SSH handshake, aborting both
// when ctx ends or the timeout passes.
func handshake(ctx context.Context, dial func(context.Context) (net.Conn, error), addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := dial(ctx)
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("connect: %w", err), nil)
	}
	// Ending ctx breaks the handshake off: a deadline for a TCP connection,
	// closing for a channel through a jump host (which has no deadlines).
	stop := context.AfterFunc(ctx, func() {
		if nc.SetDeadline(time.Unix(1, 0)) != nil {
			nc.Close()
		}
	})
	cc, chans, reqs, err := ssh.NewClientConn(quickAck(nc), addr, cfg)
	if !stop() && err == nil {
		cc.Close()
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, classify(ctx, err, nil)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}
