package remote

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

const testSSHConfig = `
Host gw-*
  ProxyJump ops@bastion:2200
  User pi
  IdentityFile ~/.ssh/fleet_%h
  IdentityFile /keys/shared

Host gw-7
  HostName 10.20.0.7
  Port 2222
  StrictHostKeyChecking yes
  UserKnownHostsFile /kh/fleet /kh/other

Host bastion
  HostName bastion.example.net
  IdentityFile /keys/bastion
  ProxyJump outer

Host outer
  User edge

Host loop-a
  ProxyJump loop-b
Host loop-b
  ProxyJump loop-a

Host bad-port
  Port http
`

func writeSSHConfig(t *testing.T) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	p := filepath.Join(home, ".ssh", "config")
	os.MkdirAll(filepath.Dir(p), 0o700)
	writeFile(t, p, testSSHConfig)
}

func TestResolveReadsSSHConfig(t *testing.T) {
	writeSSHConfig(t)
	var d Dialer
	o, err := d.Resolve(Options{Host: "gw-7"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Host: "gw-7", HostName: "10.20.0.7", Port: 2222, User: "pi", ProxyJump: "ops@bastion:2200",
		KnownHosts: "/kh/fleet", HostKeyPolicy: Strict, resolved: true,
		KeyFiles: []string{"~/.ssh/fleet_gw-7", "/keys/shared"}}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}

	// What the operator set explicitly beats the config; keys add up.
	o, err = d.Resolve(Options{Host: "gw-7", Port: 22, User: "root", HostKeyPolicy: AcceptNew,
		KeyFiles: []string{"/keys/unit"}, ProxyJump: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != 22 || o.User != "root" || o.HostKeyPolicy != AcceptNew || o.ProxyJump != "none" ||
		!reflect.DeepEqual(o.KeyFiles, []string{"/keys/unit", "~/.ssh/fleet_gw-7", "/keys/shared"}) {
		t.Errorf("explicit values: %+v", o)
	}

	// A host the config does not name keeps the defaults.
	o, err = d.Resolve(Options{Host: "10.0.0.9", User: "pi"})
	if err != nil || o.Port != 22 || o.HostName != "" || o.ProxyJump != "" || len(o.KeyFiles) != 0 {
		t.Errorf("unnamed host: %+v, %v", o, err)
	}
	// -F none ignores the file.
	if o, _ := d.Resolve(Options{Host: "gw-7", SSHConfig: "none", User: "x"}); o.HostName != "" || o.Port != 22 {
		t.Errorf("SSHConfig none: %+v", o)
	}
}

func TestJumpChainFollowsSSHConfig(t *testing.T) {
	writeSSHConfig(t)
	var d Dialer
	o, err := d.Resolve(Options{Host: "gw-7", KeyFiles: []string{"/keys/unit"}, Password: "Pw-device"})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := d.jumpChain(o, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range chain {
		got = append(got, h.User+"@"+h.address()+" keys="+strings.Join(h.KeyFiles, ",")+" jump="+h.ProxyJump)
		if h.Password != "" || h.KnownHosts != o.KnownHosts || h.HostKeyPolicy != o.HostKeyPolicy {
			t.Errorf("hop %s: password %q, known_hosts %q, policy %q", h.Host, h.Password, h.KnownHosts, h.HostKeyPolicy)
		}
	}
	// bastion is reached through its own jump host, outer; outer has no
	// keys of its own and uses the device's.
	want := []string{
		"edge@outer:22 keys=/keys/unit,~/.ssh/fleet_gw-7,/keys/shared jump=",
		"ops@bastion.example.net:2200 keys=/keys/bastion jump=outer",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("chain\n%q\nwant\n%q", got, want)
	}

	// -J a,b: b is reached through a, whatever b's own config says.
	o.ProxyJump = "outer,bastion"
	chain, err = d.jumpChain(o, o, 0)
	if err != nil || len(chain) != 2 || chain[0].Host != "outer" || chain[1].Host != "bastion" || chain[1].ProxyJump != "none" {
		t.Errorf("-J outer,bastion: %+v, %v", chain, err)
	}

	for _, host := range []string{"loop-a", "bad-port"} {
		o, err := d.Resolve(Options{Host: host, User: "x"})
		if err == nil {
			_, err = d.jumpChain(o, o, 0)
		}
		if !errors.Is(err, usage.Err) {
			t.Errorf("%s: want a usage error, got %v", host, err)
		}
	}
}
