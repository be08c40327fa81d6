package sshtest

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/testenv"
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
	id := randomHex(3)
	net := fmt.Sprintf("10.%d.%d", 200+rand.IntN(50), rand.IntN(256))
	h := &Hidden{BastionNS: "bmt-b-" + id, DeviceNS: "bmt-d-" + id,
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
