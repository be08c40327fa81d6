package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseAddr reads an IP address, without a zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s: an address with a zone", s)
	}
	return a.Unmap(), nil
}

// prefixOf is the address with its prefix length (the host part kept).
func prefixOf(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }

// parsePrefix reads "address/len", or a bare address with the default
// length def (-1: a length is required).
func parsePrefix(s string, def int) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if a, l, ok := strings.Cut(s, "/"); ok {
		ad, err := parseAddr(a)
		if err != nil {
			return netip.Prefix{}, err
		}
		n, err := strconv.Atoi(l)
		if err != nil {
			// an IPv4 netmask after the slash
			if n, err = maskBits(l); err != nil {
				return netip.Prefix{}, fmt.Errorf("%q: bad prefix length", s)
			}
		}
		p := netip.PrefixFrom(ad, n)
		if !p.IsValid() {
			return netip.Prefix{}, fmt.Errorf("%q: bad prefix length", s)
		}
		return p, nil
	}
	ad, err := parseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if def < 0 {
		return netip.Prefix{}, fmt.Errorf("%q has no prefix length", s)
	}
	if ad.Is6() && def == 24 {
		def = 64
	}
	return netip.PrefixFrom(ad, def), nil
}

// maskBits reads a dotted IPv4 netmask (255.255.255.0) as its length.
func maskBits(m string) (int, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(m))
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q is not a netmask", m)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("%q is not a contiguous netmask", m)
	}
	return n, nil
}

// parseDest reads a route's destination ("default" is any address of the family).
func parseDest(s string, family netip.Addr) (netip.Prefix, error) {
	switch s = strings.TrimSpace(s); s {
	case "default", "0.0.0.0/0", "::/0":
		if s == "0.0.0.0/0" || s == "default" && family.Is4() {
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
		}
		if s == "::/0" || s == "default" && family.Is6() {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
		}
		return netip.Prefix{}, errors.New("a default route whose family is unknown")
	}
	p, err := parsePrefix(s, -1)
	if err != nil {
		if a, err2 := parseAddr(s); err2 == nil {
			return netip.PrefixFrom(a, a.BitLen()), nil // a host route
		}
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// addRoute puts a route into its family.
func (p *Profile) addRoute(r Route) {
	ip := p.family(r.To.Addr())
	ip.Routes = append(ip.Routes, r)
}

// defaultOf is the default route's destination in the address's family.
func defaultOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}
