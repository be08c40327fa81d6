package stage1

import "testing"

func TestEndpointsFromConfigJSON(t *testing.T) {
	openBalena := balenaConfig{APIEndpoint: "https://api.open.example:8443", VPNEndpoint: "vpn.open.example", VPNPort: float64(1194)}
	operator := defaults()
	operator.APIHost, operator.VPNHost = "api.proxy.lan", ""
	for _, tc := range []struct {
		name       string
		cfg        Config
		bc         balenaConfig
		api, vpn   string
		apiP, vpnP int
	}{
		{"balenaCloud", defaults(), balenaConfig{}, "api.balena-cloud.com", "vpn.balena-cloud.com", 443, 443},
		{"self-hosted config.json", defaults(), openBalena, "api.open.example", "vpn.open.example", 8443, 1194},
		{"port as a string", defaults(), balenaConfig{APIEndpoint: "https://api.x.example", VPNEndpoint: "vpn.x.example", VPNPort: "443"}, "api.x.example", "vpn.x.example", 443, 443},
		{"operator's hosts win", operator, openBalena, "api.proxy.lan", "", 443, 443},
	} {
		c := endpoints(tc.cfg, tc.bc)
		if c.APIHost != tc.api || c.APIPort != tc.apiP || c.VPNHost != tc.vpn || c.VPNPort != tc.vpnP {
			t.Errorf("%s: API %s:%d VPN %s:%d, want %s:%d %s:%d", tc.name, c.APIHost, c.APIPort, c.VPNHost, c.VPNPort, tc.api, tc.apiP, tc.vpn, tc.vpnP)
		}
	}
}
