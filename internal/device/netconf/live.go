package netconf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Link is a network interface as the running system has it.
type Link struct {
	Name  string
	Index int
	MAC   string // lower case; empty for links without one
	// PermanentMAC: the address is the hardware's own (not random, not
	// set by software), so a keyfile can find the device by it.
	PermanentMAC bool
	Wireless     bool
	Physical     bool // backed by a device (not a bond, VLAN, veth, tunnel)
	Ethernet     bool // an Ethernet-type link (ARPHRD_ETHER)
	Addrs        []LinkAddr
}

// LinkAddr is an address on a link.
type LinkAddr struct {
	Prefix netip.Prefix
	// Dynamic: the address has a lifetime (a DHCP lease, SLAAC) rather
	// than being set for good.
	Dynamic bool
}

// Live is the running network: links, the links the default routes go
// through, and the link the SSH session came in on.
type Live struct {
	Links []Link
	// Default are the links of the preferred default route of each
	// family (the lowest metric).
	Default []string
	// Session is the link the SSH session came in on; empty when not run
	// over SSH or over a tunnel (loopback).
	Session     string
	SessionAddr netip.Addr
}

// Link returns the link with the name.
func (l *Live) Link(name string) *Link {
	for i := range l.Links {
		if l.Links[i].Name == name {
			return &l.Links[i]
		}
	}
	return nil
}

// Path is the links the device is reached through: the default routes'
// and the SSH session's, each once.
func (l *Live) Path() []string {
	var out []string
	for _, n := range append(append([]string{}, l.Default...), l.Session) {
		if n != "" && n != "lo" && !containsStr(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ReadLive reads the running network of this process's network namespace
// from /sys/class/net, /proc/net and the kernel's address list (netlink).
// sshConnection is $SSH_CONNECTION of the session stage 1 runs in ("" when
// none).
func ReadLive(sshConnection string) (Live, error) {
	var l Live
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return l, fmt.Errorf("list network links: %w", err)
	}
	for _, e := range ents {
		l.Links = append(l.Links, readSysLink(filepath.Join("/sys/class/net", e.Name()), e.Name()))
	}
	if err := readAddrs(&l); err != nil {
		return l, err
	}
	l.Default = defaultRoutes()
	if f := strings.Fields(sshConnection); len(f) == 4 {
		if a, err := netip.ParseAddr(f[2]); err == nil {
			l.SessionAddr = a.Unmap()
			for _, k := range l.Links {
				for _, ka := range k.Addrs {
					if ka.Prefix.Addr() == l.SessionAddr && !l.SessionAddr.IsLoopback() {
						l.Session = k.Name
					}
				}
			}
		}
	}
	return l, nil
}

func readSysLink(dir, name string) Link {
	k := Link{Name: name}
	read := func(f string) string {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		return strings.TrimSpace(string(b))
	}
	k.Index, _ = strconv.Atoi(read("ifindex"))
	k.MAC = strings.ToLower(read("address"))
	if k.MAC == "00:00:00:00:00:00" {
		k.MAC = ""
	}
	k.PermanentMAC = read("addr_assign_type") == "0" && k.MAC != ""
	k.Ethernet = read("type") == "1"
	_, err := os.Stat(filepath.Join(dir, "device"))
	k.Physical = err == nil
	_, errW := os.Stat(filepath.Join(dir, "wireless"))
	_, errP := os.Stat(filepath.Join(dir, "phy80211"))
	k.Wireless = errW == nil || errP == nil
	return k
}

// readAddrs asks the kernel for every address with its flags (netlink
// RTM_GETADDR): /proc does not say whether an IPv4 address is leased.
func readAddrs(l *Live) error {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		ifa := (*syscall.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		var a netip.Addr
		flags := uint32(ifa.Flags)
		for _, at := range attrs {
			switch at.Attr.Type {
			case syscall.IFA_LOCAL:
				a, _ = netip.AddrFromSlice(at.Value)
			case syscall.IFA_ADDRESS:
				if !a.IsValid() {
					a, _ = netip.AddrFromSlice(at.Value)
				}
			case 8: // IFA_FLAGS: the full 32 bits
				if len(at.Value) >= 4 {
					flags = binary.NativeEndian.Uint32(at.Value)
				}
			}
		}
		if !a.IsValid() {
			continue
		}
		const permanent = 0x80 // IFA_F_PERMANENT
		for i := range l.Links {
			if l.Links[i].Index == int(ifa.Index) {
				l.Links[i].Addrs = append(l.Links[i].Addrs, LinkAddr{Prefix: netip.PrefixFrom(a.Unmap(), int(ifa.Prefixlen)), Dynamic: flags&permanent == 0})
			}
		}
	}
	return nil
}

// defaultRoutes returns the link of the preferred default route of each
// family, from /proc/net/route and /proc/net/ipv6_route (the main table).
func defaultRoutes() []string {
	var out []string
	if f, err := os.Open("/proc/net/route"); err == nil {
		best, bestMetric := "", int64(-1)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			c := strings.Fields(sc.Text())
			if len(c) < 8 || c[1] != "00000000" || c[7] != "00000000" {
				continue
			}
			flags, _ := strconv.ParseUint(c[3], 16, 32)
			metric, _ := strconv.ParseInt(c[6], 10, 64)
			if flags&1 == 0 || flags&0x200 != 0 { // RTF_UP, not RTF_REJECT
				continue
			}
			if bestMetric < 0 || metric < bestMetric {
				best, bestMetric = c[0], metric
			}
		}
		f.Close()
		if best != "" {
			out = append(out, best)
		}
	}
	if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
		best, bestMetric := "", int64(-1)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			c := strings.Fields(sc.Text())
			if len(c) < 10 || strings.Trim(c[0], "0") != "" || c[1] != "00" || c[9] == "lo" {
				continue
			}
			flags, _ := strconv.ParseUint(c[8], 16, 32)
			metric, _ := strconv.ParseUint(c[5], 16, 32)
			if flags&1 == 0 || flags&0x200 != 0 {
				continue
			}
			if bestMetric < 0 || int64(metric) < bestMetric {
				best, bestMetric = c[9], int64(metric)
			}
		}
		f.Close()
		if best != "" && !containsStr(out, best) {
			out = append(out, best)
		}
	}
	return out
}

// SSHConnection finds $SSH_CONNECTION of the session this process runs
// in: in its environment, else in its parents' (sudo drops it from the
// environment of the command it runs).
func SSHConnection() string {
	if v := os.Getenv("SSH_CONNECTION"); v != "" {
		return v
	}
	pid := os.Getppid()
	for i := 0; i < 16 && pid > 1; i++ {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "SSH_CONNECTION="); ok {
				return v
			}
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return ""
}
