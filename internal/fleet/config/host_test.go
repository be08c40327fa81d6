package config

import (
	"strings"
	"testing"
)

func TestCheckHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string // "" accepted, else a part of the message
	}{
		{"10.20.0.30", ""},
		{"gw-0001", ""},
		{"gw-0001.example.net", ""},
		{"gw-0001.example.net.", ""},
		{"my_device", ""},
		{"fe80::1", ""},
		{"2001:db8::5", ""},
		{"::1", ""},
		{"10.20.0.300", "not an IPv4 address"},
		{"10.20.0", "not an IPv4 address"},
		{"pi@host", "--user pi"},
		{"pi@10.20.0.30", "give the host alone (10.20.0.30)"},
		{"host:22", "--port 22"},
		{"10.20.0.30:2222", "give the host alone (10.20.0.30) and the port with --port 2222"},
		{"[2001:db8::5]:22", "--port 22"},
		{"[2001:db8::5]", "without brackets"},
		{"", "is empty"},
		{" ", "is empty"},
		{"host name", "not a host name"},
		{"-host", "not a host name"},
		{"a..b", "not a host name"},
		{"ssh://host", "not a host name"},
		{strings.Repeat("a.", 130) + "a", "not a host name"},
	} {
		err := checkHost(tc.host)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.host, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error saying %q", tc.host, err, tc.want)
		}
	}
}
