// Package wifi reads the wifi networks a device knows from wpa_supplicant,
// NetworkManager and connman, and writes them as NetworkManager keyfiles that
// balenaOS picks up from resin-boot/system-connections.
package wifi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Security is how a network authenticates.
type Security int

// The kinds of security; only Open, PSK and SAE can be written as a keyfile
// from what wpa_supplicant, connman or config.json say.
const (
	PSK         Security = iota // WPA/WPA2 personal (the default)
	Open                        // no security at all
	SAE                         // WPA3 personal
	Unsupported                 // enterprise (EAP), WEP or unknown: see Why
)

// Network is one wifi network.
type Network struct {
	SSID     string
	PSK      string // passphrase or 64 hex digits; empty for Open
	Security Security
	Why      string // for Unsupported: what the network uses
	// Keyfile is the original NetworkManager file, carried as it is: it
	// holds what this type does not (802.1X, static addresses, ...).
	Keyfile []byte
	IPv4    *StaticIPv4 // static addressing, when the source has it
	Source  string      // where it was found, for the log
}

// StaticIPv4 is a fixed IPv4 setup.
type StaticIPv4 struct {
	Address string   // 192.168.1.10/24
	Gateway string   // may be empty
	DNS     []string // may be empty
}

// ParseWPASupplicant reads the network={...} blocks of a wpa_supplicant.conf.
func ParseWPASupplicant(data, source string) []Network {
	var out []Network
	var cur *Network
	var keyMgmt string
	var wep, eap bool
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(line, "network=") && strings.HasSuffix(line, "{"):
			cur, keyMgmt, wep, eap = &Network{Source: source}, "", false, false
		case line == "}" && cur != nil:
			if cur.SSID != "" {
				cur.Security, cur.Why = wpaSecurity(keyMgmt, cur.PSK != "", wep, eap)
				if cur.Security == Open || cur.Security == Unsupported {
					cur.PSK = ""
				}
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			switch k = strings.TrimSpace(k); {
			case k == "ssid":
				cur.SSID = wpaValue(v, true)
			case k == "psk" || k == "sae_password":
				cur.PSK = wpaValue(v, false)
			case k == "key_mgmt":
				keyMgmt = strings.ToUpper(wpaValue(v, false))
			case strings.HasPrefix(k, "wep_key"):
				wep = true
			case k == "eap" || k == "identity":
				eap = true
			}
		}
	}
	return out
}

// wpaSecurity classifies a network block by its key_mgmt (wpa_supplicant's
// default is "WPA-PSK WPA-EAP") and the keys it has.
func wpaSecurity(keyMgmt string, hasPSK, wep, eap bool) (Security, string) {
	if keyMgmt == "" {
		keyMgmt = "WPA-PSK WPA-EAP"
	}
	has := func(m string) bool {
		for _, f := range strings.Fields(keyMgmt) {
			if f == m {
				return true
			}
		}
		return false
	}
	switch {
	case has("NONE") && wep:
		return Unsupported, "WEP"
	case has("NONE"):
		return Open, ""
	case hasPSK && (has("WPA-PSK") || has("WPA-PSK-SHA256")):
		return PSK, ""
	case hasPSK && has("SAE"):
		return SAE, ""
	case eap || has("WPA-EAP") || has("IEEE8021X"):
		return Unsupported, "enterprise (802.1X/EAP) authentication"
	}
	return Unsupported, "key_mgmt " + keyMgmt
}

// wpaValue reads a quoted string, or an unquoted hex value (an SSID in hex,
// or a raw 64-digit PSK which is kept as it is), dropping a trailing comment.
func wpaValue(v string, hexIsText bool) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		if end := strings.LastIndex(v, `"`); end > 0 {
			return v[1:end]
		}
		return strings.TrimPrefix(v, `"`)
	}
	if i := strings.Index(v, "#"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if hexIsText {
		if b, err := hex.DecodeString(v); err == nil {
			return string(b)
		}
	}
	return v
}

// ParseNMKeyfile reads a NetworkManager keyfile; ok is false for a
// connection that is not wifi.
func ParseNMKeyfile(data, source string) (n Network, ok bool) {
	sec := ""
	isWifi := false
	keyMgmt := ""
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			sec = line[1 : len(line)-1]
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if !found || strings.HasPrefix(line, "#") {
			continue
		}
		switch sec + "." + strings.TrimSpace(k) {
		case "connection.type":
			isWifi = v == "wifi" || v == "802-11-wireless"
		case "wifi.ssid", "802-11-wireless.ssid":
			n.SSID = keyfileSSID(v)
		case "wifi-security.psk", "802-11-wireless-security.psk":
			n.PSK = v
		case "wifi-security.key-mgmt", "802-11-wireless-security.key-mgmt":
			keyMgmt = v
		}
	}
	n.Source = source
	n.Keyfile = []byte(data)
	switch keyMgmt {
	case "", "none":
		n.Security = Open
	case "wpa-psk":
		n.Security = PSK
	case "sae":
		n.Security = SAE
	default: // wpa-eap, ieee8021x, owe, ...: the original file carries it
		n.Security, n.Why = Unsupported, "key-mgmt "+keyMgmt
	}
	return n, isWifi && n.SSID != ""
}

// keyfileSSID decodes the byte-list form ("104;105;") NetworkManager uses
// for SSIDs that are not plain text.
func keyfileSSID(v string) string {
	if !strings.Contains(v, ";") {
		return v
	}
	var b []byte
	for _, p := range strings.Split(strings.TrimSuffix(v, ";"), ";") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return v
		}
		b = append(b, byte(n))
	}
	return string(b)
}

// ParseConnman reads a connman service settings file.
func ParseConnman(data, source string) []Network {
	var out []Network
	var section string
	var kv map[string]string
	flush := func() {
		if kv == nil {
			return
		}
		n := Network{Source: source, PSK: kv["Passphrase"], SSID: kv["Name"]}
		if n.SSID == "" {
			if b, err := hex.DecodeString(kv["SSID"]); err == nil {
				n.SSID = string(b)
			}
		}
		// the section name ends in the security: _psk, _none, _wep, _ieee8021x
		switch sec := section[strings.LastIndex(section, "_")+1:]; sec {
		case "psk":
		case "none":
			n.Security, n.PSK = Open, ""
		case "ieee8021x":
			n.Security, n.Why, n.PSK = Unsupported, "enterprise (802.1X/EAP) authentication", ""
		default:
			n.Security, n.Why, n.PSK = Unsupported, "security "+sec, ""
		}
		if kv["IPv4.method"] == "manual" {
			n.IPv4 = &StaticIPv4{Address: kv["IPv4.local_address"] + "/" + kv["IPv4.netmask_prefixlen"], Gateway: kv["IPv4.gateway"],
				DNS: strings.FieldsFunc(kv["Nameservers"], func(r rune) bool { return r == ';' })}
		}
		if n.SSID != "" {
			out = append(out, n)
		}
	}
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			flush()
			section, kv = line[1:len(line)-1], nil
			if strings.HasPrefix(section, "service_wifi_") {
				kv = map[string]string{}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && kv != nil {
			kv[k] = v
		}
	}
	flush()
	return out
}

// ErrUnsupported marks a network that cannot be written as a keyfile.
var ErrUnsupported = errors.New("network cannot be migrated")

// Keyfile renders n as a NetworkManager connection named id: the original
// NetworkManager file when there is one, else a keyfile written from what n
// holds. A network whose security cannot be written (EAP, WEP) or whose key
// NetworkManager would reject is refused rather than written as something
// else: an enterprise network must never come up as an open one.
func Keyfile(id string, n Network) ([]byte, error) {
	if n.Keyfile != nil {
		return n.Keyfile, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[connection]\nid=%s\ntype=wifi\n\n[wifi]\nhidden=true\nmode=infrastructure\nssid=%s\n\n", keyfileValue(id), keyfileSSIDValue(n.SSID))
	switch n.Security {
	case Open:
	case PSK, SAE:
		if err := checkPSK(n.PSK); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrUnsupported, n.SSID, err)
		}
		mgmt := "wpa-psk"
		if n.Security == SAE {
			mgmt = "sae"
		}
		fmt.Fprintf(&b, "[wifi-security]\nauth-alg=open\nkey-mgmt=%s\npsk=%s\n\n", mgmt, keyfileValue(n.PSK))
	default:
		return nil, fmt.Errorf("%w: %q uses %s", ErrUnsupported, n.SSID, n.Why)
	}
	if ip := n.IPv4; ip != nil {
		b.WriteString("[ipv4]\nmethod=manual\naddress1=" + ip.Address)
		if ip.Gateway != "" {
			b.WriteString("," + ip.Gateway)
		}
		b.WriteString("\n")
		if len(ip.DNS) > 0 {
			b.WriteString("dns=" + strings.Join(ip.DNS, ";") + ";\n")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("[ipv4]\nmethod=auto\n\n")
	}
	b.WriteString("[ipv6]\naddr-gen-mode=stable-privacy\nmethod=auto\n")
	return []byte(b.String()), nil
}

// checkPSK accepts what NetworkManager accepts: a passphrase of 8 to 63
// printable ASCII characters, or 64 hex digits.
func checkPSK(psk string) error {
	if len(psk) == 64 {
		if _, err := hex.DecodeString(psk); err == nil {
			return nil
		}
	}
	if len(psk) < 8 || len(psk) > 63 {
		return fmt.Errorf("a WPA passphrase has 8 to 63 characters, this one %d", len(psk))
	}
	for _, r := range psk {
		if r < 0x20 || r > 0x7e {
			return errors.New("a WPA passphrase is printable ASCII only")
		}
	}
	return nil
}

// keyfileValue escapes a string for a GLib key file: backslash, control
// characters, and spaces at either end (which the parser would drop).
func keyfileValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' && (i == 0 || strings.TrimRight(s[i:], " ") == ""):
			b.WriteString(`\s`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// keyfileSSIDValue writes an SSID as text when NetworkManager reads it back
// as the same bytes, else as its byte list ("104;105;").
func keyfileSSIDValue(ssid string) string {
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

// LocalReferences lists what a NetworkManager file points to outside
// itself — certificate and key files, a user the connection is limited to —
// which the new system will not have.
func LocalReferences(keyfile []byte) []string {
	var out []string
	for _, raw := range strings.Split(string(keyfile), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(raw), "=")
		if !ok || v == "" {
			continue
		}
		switch {
		case k == "permissions":
			out = append(out, "permissions "+v)
		case strings.HasSuffix(k, "-cert") || strings.HasSuffix(k, "private-key"):
			if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "file://") {
				out = append(out, k+" "+strings.TrimPrefix(v, "file://"))
			}
		}
	}
	return out
}

// Dedupe keeps the first network of each SSID.
func Dedupe(ns []Network) []Network {
	seen := map[string]bool{}
	var out []Network
	for _, n := range ns {
		if !seen[n.SSID] {
			seen[n.SSID] = true
			out = append(out, n)
		}
	}
	return out
}

// FileName is the name of the n-th (1-based) migrated connection.
func FileName(n int) string { return fmt.Sprintf("resin-wifi-%02d", n) }
