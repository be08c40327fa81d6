package netconf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrCannotCarry marks a setup that cannot be written as a keyfile that
// means the same to NetworkManager.
var ErrCannotCarry = errors.New("cannot be carried to balenaOS")

// Keyfile renders p as a NetworkManager keyfile: the original file for a
// profile read from NetworkManager, else one written from the model. A
// setup NetworkManager would read as something else — an enterprise
// network as an open one, a key it rejects — is refused (ErrCannotCarry).
func Keyfile(p *Profile) ([]byte, error) {
	if p.Keyfile != nil {
		return p.Keyfile, nil
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCannotCarry, p.Label(), err)
	}
	var kf ini
	kf.set("connection", "id", p.ID)
	kf.set("connection", "uuid", p.UUID())
	kf.set("connection", "type", string(p.Kind))
	// A virtual device (bond, VLAN) is made under the name the source
	// gives it; a physical one is found by its address when known.
	if p.Interface != "" && (p.MAC == "" || p.Kind == Bond || p.Kind == VLAN) && p.Kind != Wifi {
		kf.set("connection", "interface-name", p.Interface)
	}
	if p.NoAutoconnect {
		kf.set("connection", "autoconnect", "false")
	}
	if p.Controller != "" {
		kf.set("connection", "master", p.Controller)
		kf.set("connection", "slave-type", "bond")
	}
	link := "ethernet"
	switch p.Kind {
	case Wifi:
		link = "wifi"
		kf.set("wifi", "mode", "infrastructure")
		kf.raw("wifi", "ssid", ssidValue(p.SSID))
		// Probe for the network even when it hides its name.
		kf.set("wifi", "hidden", "true")
	case VLAN:
		kf.set("vlan", "id", strconv.Itoa(p.VLANID))
		if p.ParentMAC != "" {
			kf.set("ethernet", "mac-address", p.ParentMAC)
		} else {
			kf.set("vlan", "parent", p.Parent)
		}
	case Bond:
		for _, k := range sortedKeys(p.BondOptions) {
			kf.set("bond", k, p.BondOptions[k])
		}
	}
	if p.MAC != "" && p.Kind == Ethernet {
		kf.set(link, "mac-address", p.MAC)
	}
	if p.ClonedMAC != "" {
		kf.set(link, "cloned-mac-address", p.ClonedMAC)
	}
	if p.MTU != 0 {
		kf.set(link, "mtu", strconv.FormatUint(uint64(p.MTU), 10))
	}
	if len(p.Patterns) > 0 && p.Kind != Wifi {
		kf.raw("match", "interface-name", list(p.Patterns))
	}
	switch p.Kind {
	case Wifi:
		switch p.Security {
		case PSK:
			kf.set("wifi-security", "key-mgmt", "wpa-psk")
			kf.set("wifi-security", "psk", p.PSK)
		case SAE:
			kf.set("wifi-security", "key-mgmt", "sae")
			kf.set("wifi-security", "psk", p.PSK)
		}
	}
	if p.Controller == "" {
		p.IPv4.write(&kf, "ipv4")
		p.IPv6.write(&kf, "ipv6")
	}
	for _, k := range sortedKeys(p.Extra) {
		group, key, _ := strings.Cut(k, ".")
		if key == "_" {
			kf.group(group) // netplan's way of naming a group without keys
			continue
		}
		kf.set(group, key, p.Extra[k])
	}
	return kf.bytes(), nil
}

// Label names the profile in errors and logs.
func (p *Profile) Label() string {
	switch {
	case p.Kind == Wifi:
		return fmt.Sprintf("Wi-Fi %q", p.SSID)
	case p.Interface != "":
		return fmt.Sprintf("%s %s", p.Kind, p.Interface)
	}
	return fmt.Sprintf("%s %q", p.Kind, p.ID)
}

// check refuses what NetworkManager would reject or read differently.
func (p *Profile) check() error {
	switch p.Kind {
	case Ethernet:
	case Wifi:
		if p.SSID == "" || len(p.SSID) > 32 {
			return fmt.Errorf("an SSID has 1 to 32 bytes, this one %d", len(p.SSID))
		}
		switch p.Security {
		case Open:
		case PSK, SAE:
			if err := CheckPSK(p.PSK); err != nil {
				return err
			}
		default:
			return fmt.Errorf("it uses %s", p.Why)
		}
	case VLAN:
		if p.VLANID < 0 || p.VLANID > 4094 {
			return fmt.Errorf("VLAN id %d is not 0..4094", p.VLANID)
		}
		if p.Parent == "" && p.ParentMAC == "" {
			return errors.New("the VLAN has no parent interface")
		}
	case Bond:
		if err := checkBondOptions(p.BondOptions); err != nil {
			return err
		}
	default:
		return fmt.Errorf("a connection of type %q", p.Kind)
	}
	if p.ID == "" {
		return errors.New("no connection name")
	}
	for _, s := range []string{p.ID, p.Interface} {
		if strings.ContainsAny(s, "\x00\n") || !utf8.ValidString(s) {
			return fmt.Errorf("the name %q is not one line of text", s)
		}
	}
	for _, ip := range []*IP{&p.IPv4, &p.IPv6} {
		if ip.Method == Manual && len(ip.Addresses) == 0 {
			return errors.New("static addressing without an address")
		}
	}
	return nil
}

// CheckPSK accepts what NetworkManager accepts as a WPA key: a passphrase
// of 8 to 63 bytes (any UTF-8 text: wpa_supplicant hashes the bytes), or
// 64 hex digits.
func CheckPSK(psk string) error {
	if len(psk) == 64 {
		if _, err := hex.DecodeString(psk); err == nil {
			return nil
		}
	}
	if len(psk) < 8 || len(psk) > 63 {
		return fmt.Errorf("a WPA passphrase has 8 to 63 bytes, this one %d", len(psk))
	}
	if !utf8.ValidString(psk) {
		return errors.New("the WPA passphrase is not UTF-8 text, which a NetworkManager keyfile cannot hold")
	}
	if strings.ContainsRune(psk, 0) {
		return errors.New("the WPA passphrase holds a NUL byte")
	}
	return nil
}

// write adds the family's section.
func (ip *IP) write(kf *ini, group string) {
	method := map[Method]string{Auto: "auto", Manual: "manual", Disabled: "disabled", DHCPOnly: "dhcp", LinkLocal: "link-local", Ignore: "ignore"}[ip.Method]
	kf.set(group, "method", method)
	for i, a := range ip.Addresses {
		kf.set(group, "address"+strconv.Itoa(i+1), a.String())
	}
	if ip.Gateway.IsValid() {
		kf.set(group, "gateway", ip.Gateway.String())
	}
	if len(ip.DNS) > 0 {
		var s []string
		for _, d := range ip.DNS {
			s = append(s, d.String())
		}
		kf.raw(group, "dns", list(s))
	}
	if len(ip.Search) > 0 {
		kf.raw(group, "dns-search", list(ip.Search))
	}
	for i, r := range ip.Routes {
		v := r.To.String()
		if r.Via.IsValid() || r.Metric != 0 {
			via := r.Via
			if !via.IsValid() {
				via = netip.IPv4Unspecified()
				if r.To.Addr().Is6() {
					via = netip.IPv6Unspecified()
				}
			}
			v += "," + via.String()
		}
		if r.Metric != 0 {
			v += "," + strconv.FormatInt(r.Metric, 10)
		}
		kf.set(group, "route"+strconv.Itoa(i+1), v)
	}
	if ip.IgnoreAutoDNS {
		kf.set(group, "ignore-auto-dns", "true")
	}
	if ip.Metric != 0 {
		kf.set(group, "route-metric", strconv.FormatInt(ip.Metric, 10))
	}
}

// UUID is the connection's UUID: derived from its source and name, so
// that running stage 1 again writes the same files.
func (p *Profile) UUID() string {
	if p.ConnUUID != "" {
		return p.ConnUUID
	}
	h := sha256.Sum256([]byte("balena-migrate\x00" + string(p.Kind) + "\x00" + p.Source + "\x00" + p.ID + "\x00" + p.Interface))
	h[6] = h[6]&0x0f | 0x50 // a name-based UUID (version 5 layout)
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// bondModes are the bonding modes by their kernel numbers.
var bondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

// bondOptions are the bonding options NetworkManager (1.42 and later) knows.
var bondOptions = []string{"mode", "miimon", "updelay", "downdelay", "arp_interval", "arp_ip_target", "arp_validate",
	"arp_all_targets", "primary", "primary_reselect", "fail_over_mac", "use_carrier", "ad_select", "xmit_hash_policy",
	"resend_igmp", "lacp_rate", "active_slave", "ad_actor_sys_prio", "ad_actor_system", "ad_user_port_key",
	"all_slaves_active", "num_grat_arp", "num_unsol_na", "min_links", "lp_interval", "packets_per_slave",
	"tlb_dynamic_lb", "peer_notif_delay", "arp_missed_max"}

func checkBondOptions(opts map[string]string) error {
	for k, v := range opts {
		if !slices.Contains(bondOptions, k) {
			return fmt.Errorf("bonding option %s", k)
		}
		if strings.ContainsAny(v, "\n\x00") || v == "" {
			return fmt.Errorf("bonding option %s=%q", k, v)
		}
	}
	if m, ok := opts["mode"]; ok && !slices.Contains(bondModes, m) {
		return fmt.Errorf("bonding mode %q", m)
	}
	return nil
}

// bondMode names a bonding mode given by name or kernel number.
func bondMode(v string) string {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(bondModes) {
		return bondModes[n]
	}
	return v
}

// ini is a keyfile being written: groups and keys in the order first set.
type ini struct {
	groups []string
	keys   map[string][]string
	vals   map[string]string
}

// group adds a group, empty unless keys follow.
func (k *ini) group(group string) {
	if k.keys == nil {
		k.keys, k.vals = map[string][]string{}, map[string]string{}
	}
	if _, ok := k.keys[group]; !ok {
		k.groups = append(k.groups, group)
		k.keys[group] = nil
	}
}

// set sets a string value, escaped.
func (k *ini) set(group, key, value string) { k.raw(group, key, escape(value)) }

// raw sets a value written as it is (lists, byte lists).
func (k *ini) raw(group, key, value string) {
	k.group(group)
	if _, ok := k.vals[group+"\x00"+key]; !ok {
		k.keys[group] = append(k.keys[group], key)
	}
	k.vals[group+"\x00"+key] = value
}

func (k *ini) bytes() []byte {
	var b strings.Builder
	for i, g := range k.groups {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("[" + g + "]\n")
		for _, key := range k.keys[g] {
			b.WriteString(key + "=" + k.vals[g+"\x00"+key] + "\n")
		}
	}
	return []byte(b.String())
}

// list is a keyfile list value: each item escaped and followed by ';'.
func list(items []string) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(strings.ReplaceAll(escape(it), ";", `\;`) + ";")
	}
	return b.String()
}

// escape writes a string as a GLib key file value: backslash, control
// characters, and spaces at either end (which the parser would drop).
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == ' ' && (i == 0 || strings.TrimRight(s[i:], " ") == ""):
			b.WriteString(`\s`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ssidValue writes an SSID as text when NetworkManager reads it back as
// the same bytes, else as its byte list ("104;105;").
func ssidValue(ssid string) string {
	plain := utf8.ValidString(ssid)
	for _, r := range ssid {
		if !unicode.IsPrint(r) || r == ';' || r == '\\' {
			plain = false
		}
	}
	if plain && strings.TrimSpace(ssid) == ssid {
		return ssid
	}
	var parts []string
	for _, c := range []byte(ssid) {
		parts = append(parts, strconv.Itoa(int(c)))
	}
	return strings.Join(parts, ";") + ";"
}

// sortedKeys lists a map's keys in order, for output that does not change
// from run to run.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
