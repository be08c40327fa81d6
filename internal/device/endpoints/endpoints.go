// Package endpoints probes, from the device, every service balenaOS will
// need once it runs there — the API over HTTPS, the VPN (cloudlink) over
// TCP, the registry and delta servers, NTP over UDP and the DNS servers it
// is told to use — at the addresses the device's config.json names. The
// old system's network stands in for the new one: what it cannot reach,
// balenaOS on the same network will not reach either.
package endpoints

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is the part of config.json that says where balenaOS talks to.
type Config struct {
	APIEndpoint      string `json:"apiEndpoint"`
	VPNEndpoint      string `json:"vpnEndpoint"`
	VPNPort          any    `json:"vpnPort"` // a number or a string, as balena writes it
	RegistryEndpoint string `json:"registryEndpoint"`
	DeltaEndpoint    string `json:"deltaEndpoint"`
	NTPServers       string `json:"ntpServers"` // space separated
	DNSServers       string `json:"dnsServers"` // space separated; "null": none
	BalenaRootCA     string `json:"balenaRootCA"`
}

// balenaOS's own defaults where config.json says nothing.
var (
	defaultNTP = []string{"0.resinio.pool.ntp.org", "1.resinio.pool.ntp.org", "2.resinio.pool.ntp.org", "3.resinio.pool.ntp.org"}
	defaultDNS = []string{"8.8.8.8"}
)

// Kind is what an endpoint is for.
type Kind string

// The endpoints balenaOS uses.
const (
	API      Kind = "API"
	VPN      Kind = "VPN"
	Registry Kind = "registry"
	Delta    Kind = "delta"
	NTP      Kind = "NTP"
	DNS      Kind = "DNS"
)

// Endpoint is one service to probe.
type Endpoint struct {
	Kind Kind
	Addr string // host:port
	URL  string // for HTTP(S) probes
	// Query is the name a DNS probe asks for (the API's host).
	Query string
}

func (e Endpoint) String() string {
	if e.URL != "" {
		return fmt.Sprintf("%s %s", e.Kind, e.URL)
	}
	proto := "tcp"
	if e.Kind == NTP || e.Kind == DNS {
		proto = "udp"
	}
	return fmt.Sprintf("%s %s/%s", e.Kind, e.Addr, proto)
}

// List returns the endpoints config.json names, with balenaOS's defaults
// for NTP and DNS where it names none. An endpoint config.json leaves out
// (an openBalena without delta server) is not probed.
func List(c Config) []Endpoint {
	var out []Endpoint
	if c.APIEndpoint != "" {
		out = append(out, httpEndpoint(API, c.APIEndpoint, "/ping"))
	}
	if c.VPNEndpoint != "" {
		port := 443
		if p, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(c.VPNPort))); err == nil && p > 0 {
			port = p
		}
		out = append(out, Endpoint{Kind: VPN, Addr: net.JoinHostPort(c.VPNEndpoint, strconv.Itoa(port))})
	}
	if c.RegistryEndpoint != "" {
		reg := c.RegistryEndpoint
		if !strings.Contains(reg, "://") {
			reg = "https://" + reg
		}
		out = append(out, httpEndpoint(Registry, reg, "/v2/"))
	}
	if c.DeltaEndpoint != "" {
		out = append(out, httpEndpoint(Delta, c.DeltaEndpoint, "/"))
	}
	ntp := strings.Fields(c.NTPServers)
	if len(ntp) == 0 {
		ntp = defaultNTP
	}
	for _, s := range ntp {
		out = append(out, Endpoint{Kind: NTP, Addr: net.JoinHostPort(s, "123")})
	}
	dns := strings.Fields(c.DNSServers)
	switch {
	case c.DNSServers == "null":
		dns = nil
	case len(dns) == 0:
		dns = defaultDNS
	}
	query := "api.balena-cloud.com"
	if len(out) > 0 && out[0].Kind == API {
		if h, _, _ := net.SplitHostPort(out[0].Addr); net.ParseIP(h) == nil {
			query = h
		}
	}
	for _, s := range dns {
		out = append(out, Endpoint{Kind: DNS, Addr: net.JoinHostPort(s, "53"), Query: query})
	}
	return out
}

func httpEndpoint(k Kind, base, path string) Endpoint {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || u.Host == "" {
		return Endpoint{Kind: k, Addr: base, URL: base}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80"}[u.Scheme]
		if port == "" {
			port = "443"
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return Endpoint{Kind: k, Addr: net.JoinHostPort(u.Hostname(), port), URL: u.String()}
}

// Result is what one probe found.
type Result struct {
	Endpoint
	OK     bool
	Detail string // what answered, or why nothing did
	// Note is a doubt about an endpoint that answered: a certificate
	// this system does not trust (a TLS-inspecting proxy would break
	// balenaOS too).
	Note string
}

func (r Result) String() string {
	s := r.Endpoint.String() + ": " + r.Detail
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// Prober probes endpoints. The zero value uses the system's resolver and
// certificate authorities.
type Prober struct {
	Timeout time.Duration // per probe; 0: 10 s
	// RootCAs are trusted for HTTPS beside the system's (config.json's
	// balenaRootCA, for a self-hosted balena).
	RootCAs []*x509.Certificate
	// NTPPort and DNSPort replace 123 and 53 (tests run servers on
	// ports of their own).
	NTPPort, DNSPort int
}

// RootCA decodes config.json's balenaRootCA (base64 PEM).
func RootCA(b64 string) ([]*x509.Certificate, error) {
	if b64 == "" {
		return nil, nil
	}
	pemData, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("balenaRootCA is not base64: %w", err)
	}
	var out []*x509.Certificate
	for rest := pemData; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("balenaRootCA: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("balenaRootCA holds no PEM certificate")
	}
	return out, nil
}

// Probe probes every endpoint at once and returns the results in order.
func (p *Prober) Probe(ctx context.Context, eps []Endpoint) []Result {
	res := make([]Result, len(eps))
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = p.probe(ctx, e)
		}()
	}
	wg.Wait()
	return res
}

func (p *Prober) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 10 * time.Second
}

// udpTimeout caps the wait for an NTP or DNS answer: a server answers in
// milliseconds, and a firewall that drops the packet says nothing at all.
const udpTimeout = 5 * time.Second

func (p *Prober) probe(ctx context.Context, e Endpoint) Result {
	timeout := p.timeout()
	if (e.Kind == NTP || e.Kind == DNS) && timeout > udpTimeout {
		timeout = udpTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r := Result{Endpoint: e}
	var err error
	switch {
	case e.URL != "":
		r.Detail, r.Note, err = p.httpGet(ctx, e.URL)
	case e.Kind == NTP:
		r.Detail, err = p.ntp(ctx, e.Addr)
	case e.Kind == DNS:
		r.Detail, err = p.dns(ctx, e.Addr, e.Query)
	default:
		var c net.Conn
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", e.Addr)
		if err == nil {
			c.Close()
			r.Detail = "connected"
		}
	}
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	r.OK = true
	r.Detail += fmt.Sprintf(" in %v", time.Since(start).Round(time.Millisecond))
	return r
}

// httpGet asks the URL and takes any HTTP answer as reachable. A
// certificate the system does not trust is noted and the request made
// again without checking it: balenaOS brings its own authorities, and the
// question here is whether the server can be reached.
func (p *Prober) httpGet(ctx context.Context, u string) (detail, note string, err error) {
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range p.RootCAs {
		pool.AddCert(c)
	}
	get := func(u string, insecure bool) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure}, Proxy: nil,
			DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(u, false)
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		note = "its certificate is not trusted here: " + certErr.Err.Error() + "; a proxy that inspects TLS would break balenaOS too"
		resp, err = get(u, true)
	}
	if err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// The operator named a host and port; the server there speaks
		// plain HTTP (config.json says which).
		note = "it answers plain HTTP"
		resp, err = get("http"+strings.TrimPrefix(u, "https"), false)
	}
	if err != nil {
		return "", note, unwrapURL(err)
	}
	return "HTTP " + strconv.Itoa(resp.StatusCode), note, nil
}

// unwrapURL drops net/http's "Get URL:" prefix: the URL is said already.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (p *Prober) port(addr string, override int) string {
	if override == 0 {
		return addr
	}
	h, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(h, strconv.Itoa(override))
}

// ntp sends an SNTP client request and waits for a server's answer.
func (p *Prober) ntp(ctx context.Context, addr string) (string, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "udp", p.port(addr, p.NTPPort))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := make([]byte, 48)
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	sent := time.Now()
	binary.BigEndian.PutUint64(req[40:], ntpTime(sent))
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return "", fmt.Errorf("no NTP answer: %w", err)
		}
		// A server's answer (mode 4) to this request (our transmit time
		// echoed as its origin time).
		if n >= 48 && buf[0]&7 == 4 && binary.BigEndian.Uint64(buf[24:]) == binary.BigEndian.Uint64(req[40:]) {
			return fmt.Sprintf("NTP answer, stratum %d", buf[1]), nil
		}
	}
}

// ntpTime is t in NTP's 64-bit format (seconds since 1900, fraction).
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + 2208988800)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// dns asks the server for the address of a name and waits for its answer.
func (p *Prober) dns(ctx context.Context, addr, name string) (string, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "udp", p.port(addr, p.DNSPort))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	id := uint16(rand.UintN(1 << 16))
	q := dnsQuery(id, name)
	if _, err := c.Write(q); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return "", fmt.Errorf("no DNS answer: %w", err)
		}
		if n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
			// An answer, or "no such name": the server resolves. Any
			// other code says it will not resolve for this device.
			switch rcode := buf[3] & 0x0f; rcode {
			case 0:
				return "DNS answer", nil
			case 3:
				return "DNS answer (no such name " + name + ")", nil
			default:
				return "", fmt.Errorf("the DNS server answers %s", map[byte]string{1: "format error", 2: "server failure", 4: "not implemented", 5: "refused"}[rcode])
			}
		}
	}
}

// dnsQuery is a recursive query for the A records of name.
func dnsQuery(id uint16, name string) []byte {
	b := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}
