package netconf

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Facts are what the old system says that balenaOS's config.json can say
// too: its name, the time servers the site allows, DNS servers set by hand.
type Facts struct {
	Hostname   string
	NTPServers []string
	NTPSource  string // the file they come from
	DNSServers []string
	DNSSource  string
	Notes      []string // what was found and left out, for the log
}

// hostnameRE is a name balenaOS takes as its hostname.
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// ReadFacts reads the device's name, time servers and static DNS servers
// under fsys. DNS servers the carried setups set by hand (written) count
// as static too.
func ReadFacts(fsys fs.FS, written []*Profile) Facts {
	var f Facts
	if data, err := fs.ReadFile(fsys, "etc/hostname"); err == nil {
		name, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		name = strings.TrimSpace(name)
		switch {
		case hostnameRE.MatchString(name):
			f.Hostname = name
		case name != "":
			f.Notes = append(f.Notes, fmt.Sprintf("the hostname %q in /etc/hostname is not one balenaOS takes (letters, digits and -, up to 63): not carried", name))
		}
	}
	f.readNTP(fsys)
	f.readDNS(fsys, written)
	return f
}

// readNTP reads the servers of the time service in use: chrony, ntpd
// (ntpsec or ntp) or systemd-timesyncd. The public pool (a distribution's
// vendor zone included) is left out: balenaOS uses that pool by itself.
func (f *Facts) readNTP(fsys fs.FS) {
	var servers []string
	switch {
	case anyExists("/usr/sbin/chronyd", "/sbin/chronyd")(fsys):
		f.NTPSource = "/etc/chrony/chrony.conf"
		files := []string{"etc/chrony/chrony.conf"}
		for _, g := range []string{"etc/chrony/conf.d/*.conf", "etc/chrony/sources.d/*.sources"} {
			ms, _ := fs.Glob(fsys, g)
			slices.Sort(ms)
			files = append(files, ms...)
		}
		servers = serverLines(fsys, files)
	case anyExists("/usr/sbin/ntpd", "/sbin/ntpd")(fsys):
		f.NTPSource = "/etc/ntpsec/ntp.conf"
		if _, err := fs.Stat(fsys, "etc/ntpsec/ntp.conf"); err != nil {
			f.NTPSource = "/etc/ntp.conf"
		}
		servers = serverLines(fsys, []string{rel(f.NTPSource)})
	case enabled("systemd-timesyncd.service")(fsys):
		f.NTPSource = "/etc/systemd/timesyncd.conf"
		files := []string{"etc/systemd/timesyncd.conf"}
		for _, g := range []string{"etc/systemd/timesyncd.conf.d/*.conf", "run/systemd/timesyncd.conf.d/*.conf"} {
			ms, _ := fs.Glob(fsys, g)
			slices.Sort(ms)
			files = append(files, ms...)
		}
		for _, name := range files {
			data, err := fs.ReadFile(fsys, name)
			if err != nil {
				continue
			}
			u := parseUnit(string(data), path.Base(name), "/"+name)
			if v := u.all("Time", "NTP"); len(v) > 0 {
				servers = nil
				for _, s := range v {
					servers = append(servers, strings.Fields(s)...)
				}
			}
		}
	}
	for _, s := range servers {
		if publicPool(s) {
			f.Notes = append(f.Notes, fmt.Sprintf("time server %s (%s) is the public pool, which balenaOS uses by itself: not added", s, f.NTPSource))
			continue
		}
		if !slices.Contains(f.NTPServers, s) {
			f.NTPServers = append(f.NTPServers, s)
		}
	}
}

// serverLines reads the server, pool and peer lines of chrony and ntpd
// configuration files (the same syntax); reference clocks are left out.
func serverLines(fsys fs.FS, files []string) []string {
	var out []string
	for _, name := range files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			fl := strings.Fields(l)
			if len(fl) < 2 || strings.HasPrefix(fl[0], "#") {
				continue
			}
			switch fl[0] {
			case "server", "pool", "peer":
				if !strings.HasPrefix(fl[1], "127.127.") {
					out = append(out, fl[1])
				}
			}
		}
	}
	return out
}

// publicPool says whether an NTP server is a name of the NTP pool.
func publicPool(s string) bool {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	return s == "pool.ntp.org" || strings.HasSuffix(s, ".pool.ntp.org") || s == "ntp.ubuntu.com"
}

// readDNS reads DNS servers set by hand: a resolv.conf that no program
// writes (a plain file, not a link and not marked as generated), and the
// servers the carried static setups name.
func (f *Facts) readDNS(fsys fs.FS, written []*Profile) {
	var servers []string
	var from []string
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		if st, err := rl.Lstat("etc/resolv.conf"); err == nil && st.Mode().IsRegular() {
			data, _ := fs.ReadFile(fsys, "etc/resolv.conf")
			if generated(string(data)) {
				f.Notes = append(f.Notes, "/etc/resolv.conf is written by a program: its servers come from the network setup")
			} else {
				for _, l := range strings.Split(string(data), "\n") {
					fl := strings.Fields(l)
					if len(fl) >= 2 && fl[0] == "nameserver" {
						if a, err := netip.ParseAddr(fl[1]); err == nil && !a.IsLoopback() {
							servers = append(servers, a.String())
						}
					}
				}
				if len(servers) > 0 {
					from = append(from, "/etc/resolv.conf")
				}
			}
		}
	}
	for _, p := range written {
		n := len(servers)
		for _, ip := range []*IP{&p.IPv4, &p.IPv6} {
			if ip.Method != Manual && !ip.IgnoreAutoDNS {
				continue
			}
			for _, d := range ip.DNS {
				servers = append(servers, d.String())
			}
		}
		if len(servers) > n {
			from = append(from, p.Source)
		}
	}
	for _, s := range servers {
		if !slices.Contains(f.DNSServers, s) {
			f.DNSServers = append(f.DNSServers, s)
		}
	}
	f.DNSSource = strings.Join(from, ", ")
}

// generated says whether a resolv.conf says a program writes it.
func generated(data string) bool {
	head := strings.ToLower(data)
	if len(head) > 512 {
		head = head[:512]
	}
	for _, w := range []string{"generated by", "resolvconf", "systemd-resolved", "networkmanager", "dhcpcd", "netconfig", "do not edit"} {
		if strings.Contains(head, w) {
			return true
		}
	}
	return false
}
