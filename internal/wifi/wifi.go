// Package wifi reads the wifi networks a device knows from wpa_supplicant,
// NetworkManager and connman, and writes them as NetworkManager keyfiles that
// balenaOS picks up from resin-boot/system-connections.
package wifi

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Network is one wifi network. PSK is empty for an open network.
type Network struct {
	SSID   string
	PSK    string
	Source string // where it was found, for the log
}

// ParseWPASupplicant reads the network={...} blocks of a wpa_supplicant.conf.
func ParseWPASupplicant(data, source string) []Network {
	var out []Network
	var cur *Network
	open := false
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(line, "network=") && strings.HasSuffix(line, "{"):
			cur, open = &Network{Source: source}, false
		case line == "}" && cur != nil:
			if cur.SSID != "" {
				if open {
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
			switch strings.TrimSpace(k) {
			case "ssid":
				cur.SSID = wpaValue(v, true)
			case "psk":
				cur.PSK = wpaValue(v, false)
			case "key_mgmt":
				open = strings.TrimSpace(v) == "NONE"
			}
		}
	}
	return out
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
		}
	}
	n.Source = source
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
	var cur *Network
	flush := func() {
		if cur != nil && cur.SSID != "" {
			out = append(out, *cur)
		}
	}
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "[") {
			flush()
			cur = nil
			if strings.HasPrefix(line, "[service_wifi_") {
				cur = &Network{Source: source}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if cur == nil || !ok {
			continue
		}
		switch k {
		case "Name":
			cur.SSID = v
		case "SSID":
			if cur.SSID == "" {
				if b, err := hex.DecodeString(v); err == nil {
					cur.SSID = string(b)
				}
			}
		case "Passphrase":
			cur.PSK = v
		}
	}
	flush()
	return out
}

// Keyfile renders n as a NetworkManager connection named id.
func Keyfile(id string, n Network) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "[connection]\nid=%s\ntype=wifi\n\n[wifi]\nhidden=true\nmode=infrastructure\nssid=%s\n\n", id, keyfileEscape(n.SSID))
	if n.PSK != "" {
		fmt.Fprintf(&b, "[wifi-security]\nauth-alg=open\nkey-mgmt=wpa-psk\npsk=%s\n\n", n.PSK)
	}
	b.WriteString("[ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=stable-privacy\nmethod=auto\n")
	return []byte(b.String())
}

func keyfileEscape(ssid string) string {
	plain := true
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
