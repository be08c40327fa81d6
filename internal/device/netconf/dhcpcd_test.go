package netconf

import "testing"

// dhcpcd's defaults head the file, as the package ships it and as
// Raspberry Pi OS up to 11 has it; static blocks for any interface follow.
const dhcpcdHead = `hostname
clientid
persistent
option rapid_commit
option domain_name_servers, domain_name, domain_search, host_name
option classless_static_routes
option interface_mtu
require dhcp_server_identifier
slaac private
`

func TestDhcpcdStaticAnyInterface(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/dhcpcd.conf", dhcpcdHead+`
interface eth0
static ip_address=192.168.0.10/24
static ip6_address=fd51:42f8:caae:d92e::ff/64
static routers=192.168.0.1
static domain_name_servers=192.168.0.1 8.8.8.8 fd51:42f8:caae:d92e::1

interface eth1
metric 300

interface eth2
nohook wpa_supplicant

interface wlan0
static ip_address=192.168.1.50
static routers=192.168.1.1

ssid Lab Net
static ip_address=10.0.0.7/24
static routers=10.0.0.1
`)
	r.write("/etc/wpa_supplicant/wpa_supplicant.conf", "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev\nupdate_config=1\ncountry=DE\n\n"+
		"network={\n\tssid=\"home\"\n\tpsk=\"home-pass-1\"\n}\nnetwork={\n\tssid=\"Lab Net\"\n\tpsk=\"lab-pass-1\"\n\tpriority=5\n}\n")
	s := Read(r.fs())
	expectRefused(t, "dhcpcd", s.Refused)
	expectProfiles(t, "dhcpcd", s.Profiles,
		`ethernet "eth0" if=eth0 v4=manual 192.168.0.10/24 gw 192.168.0.1 dns 192.168.0.1 dns 8.8.8.8; v6=auto fd51:42f8:caae:d92e::ff/64 dns fd51:42f8:caae:d92e::1;`,
		`ethernet "eth1" if=eth1 v4=auto route-metric 300; v6=auto route-metric 300;`,
		`wifi "home" ssid="home" psk="home-pass-1" v4=manual 192.168.1.50/24 gw 192.168.1.1; v6=auto;`,
		`wifi "Lab Net" ssid="Lab Net" psk="lab-pass-1" v4=manual 10.0.0.7/24 gw 10.0.0.1; v6=auto;`,
	)
	readBack(t, s.Profiles)
}

func TestDhcpcdRefuses(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/dhcpcd.conf", dhcpcdHead+`static ip_address=10.9.9.9/24
interface eth0
fallback static_eth0
profile static_eth0
static ip_address=192.168.1.23/24
interface eth1
inform 192.168.5.5
interface eth2
static ip_address=10.2.0.5/24
static ntp_servers=10.2.0.1
`)
	s := Read(r.fs())
	expectRefused(t, "dhcpcd", s.Refused,
		"dhcpcd.conf:10: all interfaces: static outside an interface block",
		"dhcpcd.conf:12: interface eth0: fallback",
		"dhcpcd.conf:16: interface eth1: inform",
		"dhcpcd.conf:19: interface eth2: static ntp_servers is not carried",
	)
}

// Raspberry Pi OS up to 11: ifupdown hands wlan0 to wpa_supplicant
// (`inet manual` with wpa-conf), dhcpcd addresses it. The networks carry
// dhcpcd's static setup, each once.
func TestRaspberryPiOS11Wifi(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/network/interfaces", "source-directory /etc/network/interfaces.d\n\nallow-hotplug wlan0\niface wlan0 inet manual\n\twpa-conf /etc/wpa_supplicant/wpa_supplicant.conf\n")
	r.write("/etc/dhcpcd.conf", dhcpcdHead+"\ninterface wlan0\nstatic ip_address=192.168.1.50/24\nstatic routers=192.168.1.1\n\nssid Lab Net\nstatic ip_address=10.0.0.7/24\n")
	r.write("/etc/wpa_supplicant/wpa_supplicant.conf", "country=GB\nnetwork={\n\tssid=\"home\"\n\tpsk=\"home-pass-1\"\n}\nnetwork={\n\tssid=\"Lab Net\"\n\tpsk=\"lab-pass-1\"\n}\n")
	s := Read(r.fs())
	expectRefused(t, "read", s.Refused)
	pl := MakePlan(s, Live{}, Options{AllWifis: true})
	expectRefused(t, "plan", pl.Refused)
	expectProfiles(t, "carried", pl.Write,
		`wifi "home" if=wlan0 ssid="home" psk="home-pass-1" v4=manual 192.168.1.50/24 gw 192.168.1.1; v6=auto;`,
		`wifi "Lab Net" if=wlan0 ssid="Lab Net" psk="lab-pass-1" v4=manual 10.0.0.7/24; v6=auto;`,
	)
	readBack(t, pl.Write)
}
