package remote

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWithSSHOpts(t *testing.T) {
	base := Options{Host: "dev", Port: 22, User: "pi", KeyFiles: []string{"/k/base"}, KnownHosts: "/kh/base", HostKeyPolicy: AcceptNew}
	o, warns, err := base.WithSSHOpts(`-o StrictHostKeyChecking=no -oUserKnownHostsFile="/tmp/kh1 /tmp/kh2" ` +
		`-o ConnectTimeout 12 -o 'ServerAliveInterval 5' -i ~/.ssh/fleet -p2222 -l admin -v -o Compression=yes -F cfg`)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.HostKeyPolicy, want.KnownHosts, want.ConnectTimeout, want.KeepAlive = Off, "/tmp/kh1", 12*time.Second, 5*time.Second
	want.KeyFiles, want.Port, want.User = []string{"~/.ssh/fleet", "/k/base"}, 2222, "admin"
	want.SSHConfig = "cfg"
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], "-v") || !strings.Contains(warns[1], "Compression") {
		t.Errorf("warnings %q", warns)
	}

	// The unit's options applied on top of the worker's: later wins.
	o2, _, err := o.WithSSHOpts("-o Port=2200 -o IdentityFile=/k/unit -o StrictHostKeyChecking=accept-new -o User=root -o ServerAliveInterval=0")
	if err != nil {
		t.Fatal(err)
	}
	if o2.Port != 2200 || o2.User != "root" || o2.HostKeyPolicy != AcceptNew || o2.KeepAlive >= 0 ||
		!reflect.DeepEqual(o2.KeyFiles, []string{"/k/unit", "~/.ssh/fleet", "/k/base"}) {
		t.Errorf("second application: %+v", o2)
	}
	if o.Port != 2222 || len(o.KeyFiles) != 2 {
		t.Errorf("WithSSHOpts changed its receiver: %+v", o)
	}
}

func TestWithSSHOptsJumpHosts(t *testing.T) {
	for in, want := range map[string]string{
		"-J bastion":                             "bastion",
		"-Jops@bastion:2200,inner":               "ops@bastion:2200,inner",
		"-o ProxyJump=ops@[fd00::1]:22":          "ops@[fd00::1]:22",
		"-J bastion -o ProxyJump=none":           "none",
		"-o 'ProxyJump ssh://ops@bastion:22,b2'": "ssh://ops@bastion:22,b2",
	} {
		o, warns, err := Options{}.WithSSHOpts(in)
		if err != nil || len(warns) != 0 || o.ProxyJump != want {
			t.Errorf("%q: ProxyJump %q, warnings %q, err %v; want %q", in, o.ProxyJump, warns, err, want)
		}
	}
	hops, err := parseJumps("ops@bastion:2200,inner,[fd00::1]:2222")
	want := []jumpHost{{user: "ops", host: "bastion", port: 2200}, {host: "inner"}, {host: "fd00::1", port: 2222}}
	if err != nil || !reflect.DeepEqual(hops, want) {
		t.Errorf("parseJumps: %+v, %v", hops, err)
	}
}

func TestWithSSHOptsErrors(t *testing.T) {
	for in, wantInErr := range map[string]string{
		"-o Port=abc":                    "-o Port",
		"-p 70000":                       "-p",
		"-o ConnectTimeout=-3":           "ConnectTimeout",
		"-o StrictHostKeyChecking=maybe": "StrictHostKeyChecking",
		"-i":                             "-i needs a value",
		"-o 'User=pi":                    "unterminated",
		`-o "User=pi`:                    "unterminated",
		"-o ServerAliveInterval=1.5":     "ServerAliveInterval",
		"-o UserKnownHostsFile=":         "UserKnownHostsFile",
		"-o StrictHostKeyChecking":       "needs a value",
		"-J ops@bastion:99999":           "-J",
		"-J ,":                           "no host name",
		"-F":                             "-F needs a value",
	} {
		_, _, err := Options{}.WithSSHOpts(in)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%q: err %v, want it to mention %q", in, err, wantInErr)
		}
	}
}

func TestSplitShell(t *testing.T) {
	for in, want := range map[string][]string{
		``:                            nil,
		`  a  b `:                     {"a", "b"},
		`a\ b 'c d' "e \"f\" \$g \h"`: {"a b", "c d", `e "f" $g \h`},
		`-o'Key=v w'x`:                {"-oKey=v wx"},
		`''`:                          {""},
	} {
		got, err := splitShell(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitShell(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]HostKeyPolicy{"yes": Strict, "strict": Strict, "ASK": Strict, "no": Off, "off": Off, "accept-new": AcceptNew} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Error("bad policy accepted")
	}
}
