package netconf

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// netns is a network namespace whose only link, lan0 (a veth), carries
// the default route: the device as the kernel shows it to stage 1.
type netns struct {
	name, addr, gw string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	testenv.NeedRoot(t, "network namespaces")
	testenv.NeedProgram(t, "ip")
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	n := &netns{name: fmt.Sprintf("bmt-%d-n-%s", os.Getpid(), id), addr: "10.77.0.2", gw: "10.77.0.1"}
	host := "bmn" + id
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		exec.Command("ip", "link", "del", host).Run()
	})
	for _, cmd := range []string{
		"netns add " + n.name,
		"link add " + host + " type veth peer name lan0 netns " + n.name,
		"-n " + n.name + " link set lo up",
		"-n " + n.name + " addr add " + n.addr + "/24 dev lan0",
		"-n " + n.name + " link set lan0 up",
		"-n " + n.name + " route add default via " + n.gw + " dev lan0",
	} {
		if out, err := exec.Command("ip", strings.Fields(cmd)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", cmd, err, out)
		}
	}
	return n
}

// reachResult is what the helper process reports.
type reachResult struct {
	Default     []string
	Session     string
	Covered     []string
	Unreachable []string
	Err         string
}

// plan runs Read, ReadLive and MakePlan in a process inside the
// namespace, reached as over SSH from the gateway, for the root at dir.
func (n *netns) plan(t *testing.T, dir string) reachResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.name, exe)
	cmd.Env = append(os.Environ(), "NETCONF_REACH_ROOT="+dir, "SSH_CONNECTION="+n.gw+" 51000 "+n.addr+" 22")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(l, "REACH "); ok {
			var r reachResult
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("helper said nothing:\n%s", out)
	return reachResult{}
}

// reachHelper is the process plan starts inside the namespace (the test
// binary, told by NETCONF_REACH_ROOT): it prints what it found.
func reachHelper(dir string) {
	var r reachResult
	live, err := ReadLive(SSHConnection())
	if err != nil {
		r.Err = err.Error()
	}
	pl := MakePlan(Read(os.DirFS(dir)), live, Options{})
	r.Default, r.Session, r.Covered = live.Default, live.Session, pl.Covered
	for _, u := range pl.Unreachable {
		r.Unreachable = append(r.Unreachable, u.String())
	}
	j, _ := json.Marshal(r)
	fmt.Println("REACH " + string(j))
}

// The reachability contract on a real kernel: the default route and the
// SSH session go through lan0; without a carried setup for it the device
// would not be reached after the migration, and that is refused.
func TestReachabilityInNetworkNamespace(t *testing.T) {
	n := newNetns(t)
	r := newRoot(t)
	// The system sets up another port; lan0 got its address by hand.
	r.write("/etc/network/interfaces", "auto eth0\niface eth0 inet static\n\taddress 192.168.9.5/24\n")
	got := n.plan(t, r.dir)
	if got.Err != "" || strings.Join(got.Default, ",") != "lan0" || got.Session != "lan0" {
		t.Fatalf("the namespace as read: %+v", got)
	}
	if len(got.Unreachable) != 1 || !strings.Contains(got.Unreachable[0], "lan0 carries the default route and the SSH session but no carried setup makes it") {
		t.Fatalf("not refused: %+v", got)
	}

	// With lan0 set up by ifupdown, it is carried and covered.
	r.write("/etc/network/interfaces.d/lan0", "auto lan0\niface lan0 inet static\n\taddress "+n.addr+"/24\n\tgateway "+n.gw+"\n")
	r.write("/etc/network/interfaces", "source /etc/network/interfaces.d/*\n")
	got = n.plan(t, r.dir)
	if len(got.Unreachable) != 0 || len(got.Covered) != 1 || !strings.Contains(got.Covered[0], "lan0 (the default route and the SSH session) comes up on balenaOS: ethernet lan0 from /etc/network/interfaces.d/lan0:2") {
		t.Fatalf("not covered: %+v", got)
	}
}
