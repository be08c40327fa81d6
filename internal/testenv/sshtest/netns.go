package sshtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"golang.org/x/sys/unix"
)

// Hidden is a small private network for bastion tests: the bastion's
// network namespace is wired to this host (BastionAddr is reachable from
// here), the device's only to the bastion's (DeviceAddr is reachable from
// the bastion's namespace, not from here: no route leads there and the
// bastion's namespace forwards nothing).
type Hidden struct {
	BastionNS, DeviceNS     string
	BastionAddr, DeviceAddr string
}

// NewHidden creates the namespaces and links (it needs root and ip from
// iproute2) and removes them when the test ends.
func NewHidden(t TB) *Hidden {
	t.Helper()
	testenv.NeedRoot(t, "network namespaces")
	if _, err := testenv.LookPath("ip"); err != nil {
		t.Fatal("sshtest: ip not found: install iproute2 (scripts/test does)")
	}
	reapNamespaces()
	id := randomHex(3)
	net := fmt.Sprintf("10.%d.%d", 200+rand.IntN(50), rand.IntN(256))
	owner := strconv.Itoa(os.Getpid())
	h := &Hidden{BastionNS: "bmt-" + owner + "-b-" + id, DeviceNS: "bmt-" + owner + "-d-" + id,
		BastionAddr: net + ".2", DeviceAddr: net + ".6"}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", h.BastionNS).Run()
		exec.Command("ip", "netns", "del", h.DeviceNS).Run()
	})
	host, bast, bastIn, dev := "bmt"+id+"h", "bmt"+id+"b", "bmt"+id+"c", "bmt"+id+"d"
	for _, cmd := range []string{
		"netns add " + h.BastionNS,
		"netns add " + h.DeviceNS,
		"link add " + host + " type veth peer name " + bast,
		"link set " + bast + " netns " + h.BastionNS,
		"addr add " + net + ".1/30 dev " + host,
		"link set " + host + " up",
		"link add " + bastIn + " type veth peer name " + dev,
		"link set " + bastIn + " netns " + h.BastionNS,
		"link set " + dev + " netns " + h.DeviceNS,
		"-n " + h.BastionNS + " link set lo up",
		"-n " + h.BastionNS + " addr add " + h.BastionAddr + "/30 dev " + bast,
		"-n " + h.BastionNS + " link set " + bast + " up",
		"-n " + h.BastionNS + " addr add " + net + ".5/30 dev " + bastIn,
		"-n " + h.BastionNS + " link set " + bastIn + " up",
		"-n " + h.DeviceNS + " link set lo up",
		"-n " + h.DeviceNS + " addr add " + h.DeviceAddr + "/30 dev " + dev,
		"-n " + h.DeviceNS + " link set " + dev + " up",
	} {
		if out, err := exec.Command("ip", strings.Fields(cmd)...).CombinedOutput(); err != nil {
			t.Fatal(fmt.Sprintf("sshtest: ip %s: %v: %s", cmd, err, out))
		}
	}
	return h
}

// reapNamespaces deletes the namespaces of test processes that died
// without cleaning up (their names carry the owner's pid); deleting a
// namespace also removes its links.
func reapNamespaces() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		f := strings.Split(e.Name(), "-")
		if len(f) != 4 || f[0] != "bmt" {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || unix.Kill(pid, 0) == nil {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// Bastion is a device sshd only a bastion sshd can reach (see Hidden),
// a user on each, a known_hosts file that knows both and an OpenSSH client
// config naming them: "bastion", and "dev-1", reached with ProxyJump
// bastion (strict host keys, from KnownHosts). `ssh -F SSHConfig dev-1`
// logs in to the device.
type Bastion struct {
	Net                   *Hidden
	Bastion, Device       *Server
	BastionLogin, Login   *Login // the bastion's user, the device's user
	KnownHosts, SSHConfig string
}

// NewBastion starts both servers; the bastion accepts at most maxStartups
// connections that have not logged in yet ("" : the default); the device
// user is created with dev.
func NewBastion(t TB, dir, maxStartups string, dev UserConfig) *Bastion {
	t.Helper()
	h := NewHidden(t)
	b := &Bastion{Net: h,
		Bastion: New(t, Config{NetNS: h.BastionNS, ListenAddress: h.BastionAddr, MaxStartups: maxStartups}),
		Device:  New(t, Config{NetNS: h.DeviceNS, ListenAddress: h.DeviceAddr}),
	}
	var err error
	for _, sub := range []string{"bastion", "device"} {
		if err = os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if b.BastionLogin, err = b.Bastion.AddLogin(filepath.Join(dir, "bastion"), UserConfig{}); err != nil {
		t.Fatal(err)
	}
	if b.Login, err = b.Device.AddLogin(filepath.Join(dir, "device"), dev); err != nil {
		t.Fatal(err)
	}
	b.KnownHosts = filepath.Join(dir, "known_hosts")
	b.SSHConfig = filepath.Join(dir, "ssh_config")
	conf := fmt.Sprintf(`# an operator's client config
Host bastion
  HostName %s
  Port %d
  User %s
  IdentityFile %s

Host dev-*
  ProxyJump bastion
  User %s
  IdentityFile %s

Host dev-1
  HostName %s
  Port %d

Host *
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
`, h.BastionAddr, b.Bastion.Port, b.BastionLogin.User.Name, b.BastionLogin.Key,
		b.Login.User.Name, b.Login.Key, h.DeviceAddr, b.Device.Port, filepath.Join(dir, "known_hosts"))
	for p, data := range map[string]string{
		b.KnownHosts: b.Bastion.KnownHostsLine() + "\n" + b.Device.KnownHostsLine() + "\n",
		b.SSHConfig:  conf,
	} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
