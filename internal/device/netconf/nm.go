package netconf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// nmTypeKinds maps NetworkManager's connection types to the kinds; a
// type not listed is carried only if nmCarriedTypes has it.
var nmTypeKinds = map[string]Kind{
	"ethernet": Ethernet, "802-3-ethernet": Ethernet,
	"wifi": Wifi, "802-11-wireless": Wifi,
	"vlan": VLAN, "bond": Bond,
}

// nmCarriedTypes are the other types balenaOS's NetworkManager runs
// without a plugin: the file goes over as it is.
var nmCarriedTypes = []string{"bridge", "gsm", "cdma"}

// nmFile is a NetworkManager keyfile read as groups of keys.
type nmFile map[string]map[string]string

// parseNMFile reads a GLib key file (NetworkManager's keyfile format);
// values keep their escapes.
func parseNMFile(data string) nmFile {
	f := nmFile{}
	group := ""
	for _, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			group = line[1 : len(line)-1]
			if f[group] == nil {
				f[group] = map[string]string{}
			}
		case group != "":
			if k, v, ok := strings.Cut(line, "="); ok {
				f[group][strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return f
}

// get reads a key from the group or its alias (wifi / 802-11-wireless).
func (f nmFile) get(key string, groups ...string) string {
	for _, g := range groups {
		if v, ok := f[g][key]; ok {
			return v
		}
	}
	return ""
}

// ParseNMKeyfile reads a NetworkManager connection file. The profile
// carries the file as it is (Keyfile), with what the model needs to know
// about it: its kind, the device it binds to, its Wi-Fi network. ok is
// false for what is not a connection to carry (a loopback profile); a
// refusal says why a connection cannot be carried.
func ParseNMKeyfile(data, source string) (p *Profile, ok bool, refusal *Refusal) {
	f := parseNMFile(data)
	typ := f.get("type", "connection")
	p = &Profile{ID: f.get("id", "connection"), Source: source, Keyfile: []byte(data)}
	uuid := f.get("uuid", "connection")
	p.ConnUUID = uuid
	refuse := func(format string, a ...any) (*Profile, bool, *Refusal) {
		return p, true, &Refusal{Source: source, Why: fmt.Sprintf(format, a...), Key: uuid}
	}
	if typ == "loopback" {
		return p, false, nil
	}
	kind, known := nmTypeKinds[typ]
	if !known && !slices.Contains(nmCarriedTypes, typ) {
		if typ == "" {
			return refuse("a NetworkManager connection without a type")
		}
		return refuse("NetworkManager connection %q is of type %s, which balenaOS's NetworkManager does not run", p.ID, typ)
	}
	p.Kind = kind
	if !known {
		p.Kind = Kind(typ)
	}
	p.Interface = unescapeNM(f.get("interface-name", "connection"))
	p.Controller = f.get("master", "connection")
	if p.Controller == "" {
		p.Controller = f.get("controller", "connection")
	}
	p.NoAutoconnect = f.get("autoconnect", "connection") == "false"
	p.MAC = strings.ToLower(f.get("mac-address", "ethernet", "802-3-ethernet", "wifi", "802-11-wireless"))
	if m := f.get("interface-name", "match"); m != "" {
		for _, s := range strings.Split(strings.TrimSuffix(m, ";"), ";") {
			if s = strings.TrimSpace(s); s != "" && !strings.HasPrefix(s, "!") && !strings.HasPrefix(s, "&") {
				p.Patterns = append(p.Patterns, strings.TrimPrefix(s, "|"))
			}
		}
	}
	if p.Kind == VLAN && p.Interface == "" {
		if id, err := strconv.Atoi(f.get("id", "vlan")); err == nil {
			p.VLANID = id
			p.Interface = f.get("parent", "vlan") + "." + strconv.Itoa(id)
		}
	}
	if p.Kind == Wifi {
		p.SSID = nmSSID(f.get("ssid", "wifi", "802-11-wireless"))
		switch km := f.get("key-mgmt", "wifi-security", "802-11-wireless-security"); km {
		case "", "none":
			p.Security = Open
			if f.get("wep-key0", "wifi-security", "802-11-wireless-security") != "" || f.get("wep-key-type", "wifi-security", "802-11-wireless-security") != "" {
				p.Security, p.Why = Unsupported, "WEP"
			}
		case "wpa-psk":
			p.Security = PSK
		case "sae":
			p.Security = SAE
		default:
			p.Security, p.Why = Unsupported, "key-mgmt "+km
		}
		p.PSK = unescapeNM(f.get("psk", "wifi-security", "802-11-wireless-security"))
	}
	for group, keys := range f {
		for k, v := range keys {
			if strings.HasSuffix(k, "-flags") && isSecretFlags(group, k) {
				if n, err := strconv.Atoi(v); err == nil && n&4 == 0 && n&3 != 0 {
					what := "kept by the user's secret agent"
					if n&2 != 0 {
						what = "never saved"
					}
					return refuse("NetworkManager connection %q has its secret %s.%s %s, not in the file: balenaOS has no agent to ask for it; save the secret in the connection (%s=0) or give a file with it in COPY_NMGR_FILES",
						p.ID, group, strings.TrimSuffix(k, "-flags"), what, k)
				}
			}
		}
	}
	if refs := LocalReferences(p.Keyfile); len(refs) > 0 {
		return refuse("NetworkManager connection %q refers to %s, which balenaOS will not have: embed certificates in the connection (NetworkManager takes data:;base64,...) or give such a file in COPY_NMGR_FILES",
			p.ID, strings.Join(refs, ", "))
	}
	return p, true, nil
}

// isSecretFlags says whether a "<name>-flags" key is the flags of a secret.
func isSecretFlags(group, key string) bool {
	switch key {
	case "psk-flags", "password-flags", "wep-key-flags", "leap-password-flags", "private-key-password-flags",
		"phase2-private-key-password-flags", "pin-flags", "password-raw-flags", "ca-cert-password-flags",
		"client-cert-password-flags", "phase2-ca-cert-password-flags", "phase2-client-cert-password-flags",
		"private-key-flags", "preshared-key-flags":
		return true
	}
	return group == "vpn" && strings.HasSuffix(key, "-flags")
}

// nmSSID decodes the byte-list form ("104;105;") NetworkManager uses for
// SSIDs that are not plain text, and a plain value's escapes.
func nmSSID(v string) string {
	if strings.Contains(v, ";") {
		var b []byte
		for _, p := range strings.Split(strings.TrimSuffix(v, ";"), ";") {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 255 {
				return unescapeNM(v)
			}
			b = append(b, byte(n))
		}
		return string(b)
	}
	return unescapeNM(v)
}

// unescapeNM undoes the escapes of a GLib key file string.
func unescapeNM(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// LocalReferences lists what a NetworkManager file points to outside
// itself — certificate and key files, a user the connection is limited to —
// which the new system will not have. The system's CA bundle
// (/etc/ssl/certs) is on balenaOS too.
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
		case strings.HasSuffix(k, "-cert") || strings.HasSuffix(k, "private-key") || k == "ca-path" || k == "phase2-ca-path":
			p := strings.TrimPrefix(v, "file://")
			if strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "/etc/ssl/certs/") {
				out = append(out, k+" "+p)
			}
		}
	}
	return out
}
