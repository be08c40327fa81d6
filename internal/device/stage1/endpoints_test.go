package stage1

import (
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
)

func TestEndpointsFromConfigJSON(t *testing.T) {
	openBalena := balenaConfig{Config: endpoints.Config{APIEndpoint: "https://api.open.example:8443", VPNEndpoint: "vpn.open.example", VPNPort: float64(1194),
		RegistryEndpoint: "registry.open.example", NTPServers: "ntp.open.example"}}
	operator := defaults()
	operator.APIHost, operator.VPNHost = "api.proxy.lan", ""
	plainHTTP := defaults()
	plainHTTP.APIHost, plainHTTP.APIPort = "10.0.2.2", 80
	for _, tc := range []struct {
		name     string
		cfg      Config
		bc       balenaConfig
		api, vpn string
		vpnPort  any
		registry string
	}{
		{"balenaCloud", defaults(), balenaConfig{}, "https://api.balena-cloud.com:443", "vpn.balena-cloud.com", 443, ""},
		{"self-hosted config.json", defaults(), openBalena, "https://api.open.example:8443", "vpn.open.example", float64(1194), "registry.open.example"},
		{"operator's hosts win", operator, openBalena, "https://api.proxy.lan:443", "", 443, "registry.open.example"},
		{"port 80 is plain HTTP", plainHTTP, balenaConfig{}, "http://10.0.2.2:80", "vpn.balena-cloud.com", 443, ""},
	} {
		c := endpointConfig(tc.cfg, tc.bc)
		if c.APIEndpoint != tc.api || c.VPNEndpoint != tc.vpn || c.VPNPort != tc.vpnPort || c.RegistryEndpoint != tc.registry {
			t.Errorf("%s: API %s VPN %s:%v registry %s, want %s %s:%v %s", tc.name, c.APIEndpoint, c.VPNEndpoint, c.VPNPort, c.RegistryEndpoint, tc.api, tc.vpn, tc.vpnPort, tc.registry)
		}
	}
}

// The operator's host and port for the API of config.json keep its
// scheme: the same server, or the address the device reaches it at (a
// VM's gateway, a NAT) when config.json names it as the fleet sees it.
func TestEndpointsOperatorsAddressKeepsScheme(t *testing.T) {
	c := defaults()
	c.APIHost, c.APIPort = "10.0.2.2", 8080
	for cfg, want := range map[string]string{
		"http://10.0.2.2:8080":   "http://10.0.2.2:8080",
		"http://127.0.0.1:8080":  "http://10.0.2.2:8080",
		"https://127.0.0.1:8443": "https://10.0.2.2:8080",
		"":                       "https://10.0.2.2:8080",
	} {
		if got := endpointConfig(c, balenaConfig{Config: endpoints.Config{APIEndpoint: cfg}}).APIEndpoint; got != want {
			t.Errorf("config.json %q: got %s, want %s", cfg, got, want)
		}
	}
}
