package netconf

import (
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// wpaKeys are the keys of a wpa_supplicant network block that a keyfile
// carries, or that change nothing NetworkManager does differently.
var wpaKeys = []string{"ssid", "psk", "sae_password", "key_mgmt", "scan_ssid", "priority", "id_str", "proto",
	"pairwise", "group", "disabled", "ieee80211w", "auth_alg", "bgscan", "mode"}

// wpaEAPKeys mark an enterprise network.
var wpaEAPKeys = []string{"eap", "identity", "anonymous_identity", "password", "ca_cert", "client_cert",
	"private_key", "private_key_passwd", "phase1", "phase2", "domain_suffix_match"}

// ParseWPASupplicant reads the network={...} blocks of a wpa_supplicant.conf.
// A network the keyfile cannot carry (enterprise, WEP, access point mode,
// an option with no NetworkManager meaning) is returned Unsupported.
func ParseWPASupplicant(data, source string) []*Profile {
	var out []*Profile
	var cur *Profile
	var keyMgmt, other string
	var wep, eap bool
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(line, "network=") && strings.HasSuffix(line, "{"):
			cur, keyMgmt, other, wep, eap = &Profile{Kind: Wifi, Source: source}, "", "", false, false
		case line == "}" && cur != nil:
			if cur.SSID != "" {
				cur.ID = cur.SSID
				cur.Security, cur.Why = wpaSecurity(keyMgmt, cur.PSK != "", wep, eap)
				if cur.Security != Unsupported && other != "" {
					cur.Security, cur.Why = Unsupported, other
				}
				if cur.Security == Open || cur.Security == Unsupported {
					cur.PSK = ""
				}
				out = append(out, cur)
			}
			cur = nil
		case cur != nil && line != "" && !strings.HasPrefix(line, "#"):
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
			case k == "disabled":
				cur.NoAutoconnect = wpaValue(v, false) == "1"
			case k == "mode":
				if m := wpaValue(v, false); m != "0" && other == "" {
					other = map[string]string{"1": "ad-hoc (IBSS) mode", "2": "access point mode"}[m]
					if other == "" {
						other = "mode " + m
					}
				}
			case strings.HasPrefix(k, "wep_key") || k == "wep_tx_keyidx":
				wep = true
			case slices.Contains(wpaEAPKeys, k):
				eap = true
			case slices.Contains(wpaKeys, k):
			default:
				if other == "" {
					other = "the option " + k
				}
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
	has := func(m string) bool { return slices.Contains(strings.Fields(keyMgmt), m) }
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

// wpaValue reads a quoted string, a P"..." string with printf escapes, or
// an unquoted hex value (an SSID in hex, or a raw 64-digit PSK which is
// kept as it is), dropping a trailing comment.
func wpaValue(v string, hexIsText bool) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `P"`) && hexIsText {
		if end := strings.LastIndex(v, `"`); end > 1 {
			if s, err := strconv.Unquote(`"` + v[2:end] + `"`); err == nil {
				return s
			}
			return v[2:end]
		}
	}
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

// ParseConnman reads a connman service settings file.
func ParseConnman(data, source string) []*Profile {
	var out []*Profile
	var section string
	var kv map[string]string
	flush := func() {
		if kv == nil {
			return
		}
		p := &Profile{Kind: Wifi, Source: source, PSK: kv["Passphrase"], SSID: kv["Name"]}
		if p.SSID == "" {
			if b, err := hex.DecodeString(kv["SSID"]); err == nil {
				p.SSID = string(b)
			}
		}
		p.ID = p.SSID
		// the section name ends in the security: _psk, _none, _wep, _ieee8021x
		switch sec := section[strings.LastIndex(section, "_")+1:]; sec {
		case "psk":
		case "none":
			p.Security, p.PSK = Open, ""
		case "ieee8021x":
			p.Security, p.Why, p.PSK = Unsupported, "enterprise (802.1X/EAP) authentication", ""
		default:
			p.Security, p.Why, p.PSK = Unsupported, "security "+sec, ""
		}
		if kv["IPv4.method"] == "manual" {
			a, err1 := parseAddr(kv["IPv4.local_address"])
			n, err2 := strconv.Atoi(kv["IPv4.netmask_prefixlen"])
			if err1 != nil || err2 != nil || !a.Is4() {
				p.Security, p.Why = Unsupported, "a static IPv4 setup that cannot be read"
			} else {
				p.IPv4.Method = Manual
				p.addAddress(prefixOf(a, n))
				p.IPv4.Gateway, _ = parseAddr(kv["IPv4.gateway"])
				for _, d := range strings.Split(kv["Nameservers"], ";") {
					if a, err := parseAddr(d); err == nil {
						p.addDNS(a)
					}
				}
			}
		}
		if p.SSID != "" {
			out = append(out, p)
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
