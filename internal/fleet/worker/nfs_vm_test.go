package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// TestMain lets this test binary, copied into the NFS VM, act as the
// programs of the scenario there (NFSPROOF names which).
func TestMain(m *testing.M) {
	if mode := os.Getenv("NFSPROOF"); mode != "" {
		err := nfsProof(mode, os.Args[1:])
		if errors.Is(err, errNotYet) {
			os.Exit(1)
		}
		if err != nil {
			fmt.Println("NFSPROOF-FAIL", mode+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// nfsUnits is how many units the two hosts share; each takes nfsWork.
const (
	nfsUnits = 12
	nfsWork  = 6 * time.Second
)

// nfsInit runs the scenario inside one VM, Debian's cloud kernel: the root
// network namespace is the NFS server (NFSv4.2 only, 10 s lease), exporting
// /srv; namespaces A and B are two client hosts, each with its own network
// (a veth pair), host name (so its own NFSv4 client identity and lease) and
// mount of the database. Both run a worker over the same units. Once A
// holds units, A loses the server (its link goes down, as a host that
// loses power) and is killed. B must not take A's units until the server
// has expired A's lease, then finish everything.
const nfsInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules.load); do insmod /lib/modules/$m || echo "nfsproof: insmod $m failed"; done
mkdir -p /run /tmp /srv /var/lib/nfs/v4recovery /mnt
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /srv
mount -t nfsd nfsd /proc/fs/nfsd
echo 10 > /proc/fs/nfsd/nfsv4leasetime
echo 10 > /proc/fs/nfsd/nfsv4gracetime
export PATH=/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin
NFSPROOF=fill /bin/worker.test /srv || { echo VMTEST-EXIT=3; poweroff -f; }
touch /var/lib/nfs/etab /var/lib/nfs/rmtab
exportfs -ra
rpc.mountd -N 2 -N 3 --no-udp
rpc.nfsd -N 3 -V 4.2 8
/usr/local/sbin/ip link set lo up
net() { # name server-ip client-ip
	/usr/local/sbin/ip netns add $1
	/usr/local/sbin/ip link add v$1 type veth peer name p$1 netns $1
	/usr/local/sbin/ip addr add $2/24 dev v$1
	/usr/local/sbin/ip link set v$1 up
	/usr/local/sbin/ip -n $1 addr add $3/24 dev p$1
	/usr/local/sbin/ip -n $1 link set p$1 up
	/usr/local/sbin/ip -n $1 link set lo up
}
net A 10.9.1.1 10.9.1.2
net B 10.9.2.1 10.9.2.2
host() { # name server-ip client-ip
	NFSPROOF=worker /usr/local/sbin/ip netns exec $1 unshare -u sh -c "hostname host$1; exec /bin/worker.test $1 $2 $3" >/tmp/$1.log 2>&1 &
}
host A 10.9.1.1 10.9.1.2
PIDA=$!
host B 10.9.2.1 10.9.2.2
# Bounded waits, so a broken lock fails the test in minutes.
end=$(($(date +%s) + 120))
until NFSPROOF=holding /bin/worker.test /srv A || [ $(date +%s) -ge $end ]; do sleep 0.3; done
NFSPROOF=stamp /bin/worker.test /srv/cut
/usr/local/sbin/ip link set vA down
kill -9 $PIDA
echo "nfsproof: host A cut off and killed"
end=$(($(date +%s) + 120))
until [ "$(ls /srv/db/process | wc -l)" -ge ` + "NUNITS" + ` ] || [ $(date +%s) -ge $end ]; do sleep 1; done
sleep 1
echo "--- host A log"; tail -n 15 /tmp/A.log
echo "--- host B log"; tail -n 15 /tmp/B.log
NFSPROOF=check /bin/worker.test /srv
echo "VMTEST-EXIT=$?"
poweroff -f
`

func TestNFSTwoHostsOneKilled(t *testing.T) {
	testenv.NeedProgram(t, "qemu-system-x86_64")
	ip := testenv.NeedProgram(t, "ip")
	k, err := vmtest.FindKernel()
	testenv.Need(t, err == nil, fmt.Sprint(err))
	cache := os.Getenv("BALENA_MIGRATE_TEST_CACHE")
	if cache == "" {
		cache = vmtest.DefaultCache
	}
	utils := filepath.Join(cache, "nfs-utils")
	testenv.NeedFile(t, filepath.Join(utils, "rpc.nfsd"), "scripts/test-setup.d/55-nfs-utils")
	testenv.NeedFile(t, "/bin/busybox", "busybox-static")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	a := vmtest.Archive{}
	if err := a.AddHostFile("bin/busybox", "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	progs := map[string]string{"bin/worker.test": self, "usr/local/sbin/ip": ip}
	for _, p := range []string{"rpc.nfsd", "rpc.mountd", "exportfs"} {
		progs["usr/local/sbin/"+p] = filepath.Join(utils, p)
	}
	for dst, src := range progs {
		if err := addWithLibs(a, dst, src); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"/etc/netconfig", "/etc/protocols", "/etc/services"} {
		testenv.NeedFile(t, f, "scripts/test-packages")
		a.AddHostFile(f, f)
	}
	a.AddFile("etc/exports", []byte("/srv *(rw,sync,no_root_squash,no_subtree_check,insecure,fsid=0)\n"), 0o644)
	a.AddFile("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	a.AddFile("etc/group", []byte("root:x:0:\n"), 0o644)
	mods, err := vmtest.ModuleClosure(k.ModulesDir, []string{"veth", "nfsd", "nfsv4"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if err := a.AddHostFile("lib/modules/"+m, filepath.Join(k.ModulesDir, m)); err != nil {
			t.Fatal(err)
		}
	}
	a.AddFile("etc/modules.load", []byte(strings.Join(mods, "\n")+"\n"), 0o644)
	a.AddFile("init", []byte(strings.Replace(nfsInit, "NUNITS", strconv.Itoa(nfsUnits), 1)), 0o755)
	a["dev/console"] = vmtest.Entry{Mode: vmtest.ModeChar | 0o600, Major: 5, Minor: 1}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root"} {
		a[d] = vmtest.Entry{Mode: vmtest.ModeDir | 0o755}
	}
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteGzip(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	res, err := vmtest.Boot(context.Background(), vmtest.VM{Kernel: k, Initrd: initrd, Memory: 1024, Timeout: 7 * time.Minute})
	console := res.Console
	if err != nil || res.ExitCode != 0 || !strings.Contains(console, "NFSPROOF-OK") {
		t.Fatalf("NFS scenario failed (exit %d, %v):\n%s", res.ExitCode, err, lastLines(console, 80))
	}
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "NFSPROOF-OK") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

var lddPath = regexp.MustCompile(`(/[^ ]+) \(0x`)

// addWithLibs adds a dynamically linked program with the shared libraries
// ldd lists for it, at the same paths.
func addWithLibs(a vmtest.Archive, dst, src string) error {
	if err := a.AddHostFile(dst, src); err != nil {
		return err
	}
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return nil // statically linked
	}
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		if err := a.AddHostFile(m[1], m[1]); err != nil {
			return err
		}
	}
	return nil
}

// nfsProof is this binary's part inside the VM.
func nfsProof(mode string, args []string) error {
	switch mode {
	case "fill":
		return proofFill(args[0])
	case "worker":
		return proofWorker(args[0], args[1], args[2])
	case "holding":
		return proofHolding(args[0], args[1])
	case "stamp":
		return os.WriteFile(args[0], []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644)
	case "check":
		return proofCheck(args[0])
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func proofFill(srv string) error {
	db, err := spool.Open(srv)
	if err != nil {
		return err
	}
	var us []*unit.Unit
	for i := 0; i < nfsUnits; i++ {
		u, err := unit.New(fmt.Sprintf("nfs-%03d", i), time.Now())
		if err != nil {
			return err
		}
		us = append(us, u)
	}
	if _, err := db.AddMany(us); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(srv, "journal"), 0o755)
}

// proofWorker mounts the export and runs a worker whose handler takes
// nfsWork per unit, journalling when it starts and ends each one.
func proofWorker(name, server, client string) error {
	// The same path on every host, as in production: units record
	// absolute paths (their log's).
	mnt := "/mnt/db"
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("vers=4.2,addr=%s,clientaddr=%s", server, client)
	if err := unix.Mount(server+":/", mnt, "nfs4", 0, opts); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	journal, err := os.OpenFile(filepath.Join(mnt, "journal", name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	note := func(what, id string) {
		fmt.Fprintf(journal, "%s %s %d\n", what, id, time.Now().UnixNano())
		journal.Sync()
	}
	db, err := spool.Open(mnt)
	if err != nil {
		return err
	}
	l := &Loop{DB: db, Input: spool.Units, Name: "nfs-" + name, Jobs: 2, Rescan: 2 * time.Second,
		Log: zerolog.New(os.Stdout).With().Timestamp().Str("host", name).Logger(),
		Handle: func(ctx context.Context, j *Job) Outcome {
			note("start", j.Unit.ID())
			time.Sleep(nfsWork)
			note("end", j.Unit.ID())
			return Outcome{To: spool.Process, Unit: j.Unit, Msg: "done on host " + name}
		}}
	ctx := context.Background()
	return l.Run(ctx, ctx)
}

type span struct {
	host       string
	start, end int64 // end 0: never ended
}

// readJournals returns, per unit id, the work every host did on it.
func readJournals(dir string) (map[string][]span, error) {
	work := map[string][]span{}
	for _, host := range []string{"A", "B"} {
		f, err := os.Open(filepath.Join(dir, host))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var what, id string
			var ns int64
			if _, err := fmt.Sscan(sc.Text(), &what, &id, &ns); err != nil {
				continue // a torn last line of the killed host
			}
			s := work[id]
			switch what {
			case "start":
				work[id] = append(s, span{host: host, start: ns})
			case "end":
				if n := len(s); n > 0 && s[n-1].host == host && s[n-1].end == 0 {
					s[n-1].end = ns
				}
			}
		}
		f.Close()
	}
	return work, nil
}

// errNotYet is proofHolding's quiet "not yet".
var errNotYet = errors.New("not yet")

// proofHolding succeeds once host has finished a unit and started one
// less than 2 s ago, so the cut falls well inside that unit's work (a cut
// just as a unit ends could lose the move after the work was journalled).
func proofHolding(srv, host string) error {
	work, err := readJournals(filepath.Join(srv, "journal"))
	if err != nil {
		return errNotYet // the host has not mounted yet
	}
	fresh, ended := 0, 0
	for _, spans := range work {
		for _, s := range spans {
			if s.host == host && s.end == 0 && time.Since(time.Unix(0, s.start)) < 2*time.Second {
				fresh++
			} else if s.host == host && s.end != 0 {
				ended++
			}
		}
	}
	if fresh == 0 || ended == 0 {
		return errNotYet
	}
	return nil
}

// proofCheck verifies the outcome: every unit in process/ exactly once and
// nowhere else, migrated (ended) exactly once, no two hosts ever working on
// one unit at the same time, and the units A held when it died finished by
// B only after A was gone.
func proofCheck(srv string) error {
	cutData, err := os.ReadFile(filepath.Join(srv, "cut"))
	if err != nil {
		return err
	}
	cut, _ := strconv.ParseInt(string(cutData), 10, 64)
	work, err := readJournals(filepath.Join(srv, "journal"))
	if err != nil {
		return err
	}
	db, err := spool.Open(srv)
	if err != nil {
		return err
	}
	var problems []string
	for _, d := range []spool.Dir{spool.Units, spool.Tmp, spool.Fail, spool.Done} {
		names, _ := os.ReadDir(db.Path(d))
		for _, n := range names {
			if _, ok := spool.UnitName(d, n.Name()); ok {
				problems = append(problems, "left in "+string(d)+": "+n.Name())
			}
		}
	}
	inProcess := map[string]int{}
	names, _ := os.ReadDir(db.Path(spool.Process))
	for _, n := range names {
		if id, _, ok := spool.ParseName(n.Name()); ok {
			inProcess[id]++
		}
	}
	var pickup []float64
	for i := 0; i < nfsUnits; i++ {
		id := fmt.Sprintf("nfs-%03d", i)
		if inProcess[id] != 1 {
			problems = append(problems, fmt.Sprintf("%s in process/ %d times", id, inProcess[id]))
		}
		spans := work[id]
		sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
		ended := 0
		for j, s := range spans {
			end := s.end
			if end == 0 {
				if s.host != "A" {
					problems = append(problems, fmt.Sprintf("%s: host %s never finished it", id, s.host))
					continue
				}
				end = cut // A's work ended when A died
			}
			if s.end != 0 {
				ended++
			}
			for _, o := range spans[j+1:] {
				if o.start < end {
					problems = append(problems, fmt.Sprintf("%s: host %s started it at %d while host %s worked on it (%d..%d)", id, o.host, o.start, s.host, s.start, end))
				}
			}
			if s.host == "A" && s.end == 0 {
				if j == len(spans)-1 {
					problems = append(problems, id+": held by the dead host A and never picked up")
				} else {
					pickup = append(pickup, float64(spans[j+1].start-cut)/1e9)
				}
			}
		}
		if ended != 1 {
			problems = append(problems, fmt.Sprintf("%s migrated %d times", id, ended))
		}
	}
	if len(pickup) == 0 {
		problems = append(problems, "host A held no unit when it died: the scenario proved nothing")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("NFSPROOF-PROBLEM", p)
		}
		return fmt.Errorf("%d problems", len(problems))
	}
	sort.Float64s(pickup)
	byHost := map[string]int{}
	for _, spans := range work {
		for _, s := range spans {
			if s.end != 0 {
				byHost[s.host]++
			}
		}
	}
	fmt.Printf("NFSPROOF-OK %d units migrated once each (host A %d before it died, host B %d); %d units held by A picked up by B %.1f-%.1f s after A was cut off\n",
		nfsUnits, byHost["A"], byHost["B"], len(pickup), pickup[0], pickup[len(pickup)-1])
	return nil
}
