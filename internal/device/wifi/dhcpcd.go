package wifi

import (
	"strings"
)

// DhcpcdStatic is the static IPv4 setup of a dhcpcd.conf (Raspberry Pi OS
// up to 11 keeps it there rather than with the wifi network).
type DhcpcdStatic struct {
	Interface map[string]*StaticIPv4 // `interface wlan0` blocks
	SSID      map[string]*StaticIPv4 // `ssid Name` blocks
}

// ParseDhcpcd reads the `static` options of the interface and ssid blocks
// of a dhcpcd.conf.
func ParseDhcpcd(data string) DhcpcdStatic {
	out := DhcpcdStatic{Interface: map[string]*StaticIPv4{}, SSID: map[string]*StaticIPv4{}}
	var cur *StaticIPv4
	var curMap map[string]*StaticIPv4
	var curKey string
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch word {
		case "interface":
			cur, curMap, curKey = &StaticIPv4{}, out.Interface, rest
		case "ssid":
			cur, curMap, curKey = &StaticIPv4{}, out.SSID, rest
		case "static":
			if cur == nil {
				continue
			}
			k, v, _ := strings.Cut(rest, "=")
			vals := strings.Fields(v)
			switch strings.TrimSpace(k) {
			case "ip_address":
				for _, a := range vals {
					if strings.Contains(a, ".") && cur.Address == "" {
						if !strings.Contains(a, "/") {
							a += "/24" // dhcpcd's default for a bare address
						}
						cur.Address = a
					}
				}
			case "routers":
				if len(vals) > 0 {
					cur.Gateway = vals[0]
				}
			case "domain_name_servers":
				for _, d := range vals {
					if strings.Contains(d, ".") {
						cur.DNS = append(cur.DNS, d)
					}
				}
			}
			if cur.Address != "" {
				curMap[curKey] = cur
			}
		}
	}
	return out
}

// For returns the static setup dhcpcd gives the wifi network ssid on
// interface iface, or nil for DHCP.
func (d DhcpcdStatic) For(iface, ssid string) *StaticIPv4 {
	if s := d.SSID[ssid]; s != nil {
		return s
	}
	return d.Interface[iface]
}
