package spool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// TestMain lets the test binary act as a separate claiming process, so a
// test can kill -9 a real owner.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SPOOL_TEST_CLAIMER"); dir != "" {
		claimAndHang(dir)
		return
	}
	os.Exit(m.Run())
}

// claimAndHang claims every unit in units/, updates each once, prints
// "claimed", and waits to be killed.
func claimAndHang(base string) {
	db, err := Open(base)
	if err != nil {
		panic(err)
	}
	names, _ := readNames(db.Path(Units))
	var keep []*Claim
	for _, n := range names {
		c, err := db.Claim(Units, n, time.Now(), nil)
		if err != nil {
			panic(err)
		}
		u := c.Unit.Clone()
		u.Set(unit.FieldDeviceID, "0123456789abcdef0123456789abcdef")
		if err := c.Update(u); err != nil {
			panic(err)
		}
		keep = append(keep, c)
	}
	fmt.Println("claimed", len(keep))
	time.Sleep(time.Hour)
}

func newDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func addUnits(t testing.TB, db *DB, n int) []string {
	t.Helper()
	var us []*unit.Unit
	for i := 0; i < n; i++ {
		u, err := unit.New(fmt.Sprintf("dev-%05d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	paths, err := db.AddMany(us)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// where maps each unit id to the directories it is found in.
func where(t *testing.T, db *DB) map[string][]Dir {
	t.Helper()
	m := map[string][]Dir{}
	for _, d := range StateDirs {
		names, err := readNames(db.Path(d))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if d == Tmp {
				if _, n2, ok := parseClaimName(n); ok {
					n = n2
				} else {
					continue
				}
			}
			if id, _, ok := ParseName(n); ok {
				m[id] = append(m[id], d)
			}
		}
	}
	return m
}

func TestOpenCreatesPrivateDirs(t *testing.T) {
	db := newDB(t)
	for _, d := range []Dir{"", Units, Tmp, Process, Done, Fail, Log} {
		st, err := os.Stat(db.Path(d))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %o, want 700", d, st.Mode().Perm())
		}
	}
}

func TestClaimRaceHasOneWinner(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 200)
	names, _ := readNames(db.Path(Units))
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range names {
				c, err := db.Claim(Units, n, time.Now(), nil)
				if errors.Is(err, ErrTaken) || errors.Is(err, ErrBusy) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				won[n]++
				mu.Unlock()
				if _, err := c.Finish(Process, c.Unit); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, n := range names {
		if won[n] != 1 {
			t.Errorf("%s claimed %d times", n, won[n])
		}
	}
	for id, ds := range where(t, db) {
		if len(ds) != 1 || ds[0] != Process {
			t.Errorf("%s is in %v", id, ds)
		}
	}
}

func TestNotDueStaysPut(t *testing.T) {
	db := newDB(t)
	u, _ := unit.New("later", time.Now())
	u.SetDue(time.Now().Add(time.Hour))
	p, err := db.Add(u)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p)
	if _, err := db.Claim(Units, filepath.Base(p), time.Now(), nil); !errors.Is(err, ErrNotDue) {
		t.Fatalf("err = %v, want ErrNotDue", err)
	}
	st2, err := os.Stat(p)
	if err != nil || !os.SameFile(st1, st2) {
		t.Fatal("a unit that is not due was moved")
	}
	due, next, err := db.NewScanner(Units, nil).Scan(time.Now())
	if err != nil || len(due) != 0 || next.IsZero() {
		t.Fatalf("scan: due=%v next=%v err=%v", due, next, err)
	}
}

func TestLiveClaimIsNeverStolenAndUpdateKeepsIt(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 1)
	names, _ := readNames(db.Path(Units))
	c, err := db.Claim(Units, names[0], time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Unit.Clone()
	u.Set(unit.FieldDeviceID, "abc")
	if err := c.Update(u); err != nil {
		t.Fatal(err)
	}
	back, err := db.RecoverOrphans()
	if err != nil || len(back) != 0 {
		t.Fatalf("recovered a live claim: %v %v", back, err)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(db.Path(Units, names[0]))
	if !strings.Contains(string(data), "DEVICE_ID=abc") {
		t.Fatalf("history lost on release:\n%s", data)
	}
}

func TestKilledOwnerUnitsComeBackWithHistory(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 5)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CLAIMER="+filepath.Dir(db.Root()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "claimed 5") {
		t.Fatalf("claimer said %q", buf[:n])
	}
	if back, _ := db.RecoverOrphans(); len(back) != 0 {
		t.Fatalf("stole %v from a live owner", back)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	back, err := db.RecoverOrphans()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(back)
	if len(back) != 5 {
		t.Fatalf("recovered %v", back)
	}
	for id, ds := range where(t, db) {
		if len(ds) != 1 || ds[0] != Units {
			t.Errorf("%s is in %v", id, ds)
		}
	}
	names, _ := readNames(db.Path(Units))
	for _, n := range names {
		data, _ := os.ReadFile(db.Path(Units, n))
		if !strings.Contains(string(data), "DEVICE_ID=0123456789abcdef0123456789abcdef") {
			t.Errorf("%s lost its DEVICE_ID:\n%s", n, data)
		}
	}
	left, _ := readNames(db.Path(Tmp))
	if len(left) != 0 {
		t.Errorf("tmp/ still holds %v", left)
	}
}

func TestAddRefusesExistingAnywhere(t *testing.T) {
	db := newDB(t)
	paths := addUnits(t, db, 1)
	u, _ := unit.New("dev-00000", time.Now())
	if _, err := db.Add(u); !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v", err)
	}
	c, err := db.Claim(Units, filepath.Base(paths[0]), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Add(u); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "tmp") {
		t.Fatalf("claimed unit: err = %v", err)
	}
	c.Unit.SetFail(devproto.ClassAuth, "denied", time.Now())
	if _, err := c.Finish(Fail, c.Unit); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Add(u); !errors.Is(err, ErrExists) {
		t.Fatalf("failed unit: err = %v", err)
	}
	p, err := db.Retry("dev-00000", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), "FAIL_") || !strings.HasPrefix(filepath.Base(p), "unit-dev-00000-") {
		t.Fatalf("retry left %s:\n%s", p, data)
	}
	if _, err := db.Retry("dev-00000", nil); err == nil {
		t.Fatal("retry of a unit in units/ succeeded")
	}
}

func TestSecretFilesArePrivate(t *testing.T) {
	db := newDB(t)
	u, _ := unit.New("pw", time.Now())
	u.Set(unit.FieldSSHPassword, "s3cret")
	p, err := db.Add(u)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]string{
		"unit-a-b-XyZ12345": "a-b", "fail-x:y-abc": "x:y", "log-q-1": "q",
		"unit--x-abc": "", "unit-abc": "", "other-a-b": "", "unit-../x-abc": "",
	} {
		id, _, ok := ParseName(name)
		if ok != (want != "") || id != want && ok {
			t.Errorf("ParseName(%q) = %q, %v", name, id, ok)
		}
	}
}

func TestWorkerRegistration(t *testing.T) {
	db := newDB(t)
	r, err := db.Register("test")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.LiveWorkers(); n != 1 {
		t.Fatalf("live = %d", n)
	}
	r.Close()
	if n, _ := db.LiveWorkers(); n != 0 {
		t.Fatalf("live = %d after close", n)
	}
}

// BenchmarkClaim measures units claimed per second from a db of 10,000
// units, by 1 and by 8 concurrent claimers.
func BenchmarkClaim(b *testing.B) {
	for _, claimers := range []int{1, 8} {
		b.Run(fmt.Sprintf("claimers=%d", claimers), func(b *testing.B) {
			total := 0
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				db := newDB(b)
				addUnits(b, db, 10000)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				var mu sync.Mutex
				for w := 0; w < claimers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						s := db.NewScanner(Units, nil)
						for {
							due, _, _ := s.Scan(time.Now())
							if len(due) == 0 {
								return
							}
							for _, e := range due {
								c, err := db.Claim(Units, e.Name, time.Now(), nil)
								if err != nil {
									continue
								}
								c.FinishRaw(Process)
								mu.Lock()
								total++
								mu.Unlock()
							}
						}
					}()
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "units/s")
		})
	}
}

func TestDeadWritersTempFilesRemovedAtOnce(t *testing.T) {
	db := newDB(t)
	dead := exec.Command("true")
	dead.Run()
	host, _ := os.Hostname()
	stale := db.Path(Tmp, fmt.Sprintf("%s%d@%s-123", writePrefix, dead.Process.Pid, host))
	live := db.Path(Tmp, fmt.Sprintf("%s%d@%s-123", writePrefix, os.Getpid(), host))
	// The same pid on another host of an NFS database says nothing.
	remote := db.Path(Tmp, fmt.Sprintf("%s%d@other-%s-123", writePrefix, dead.Process.Pid, host))
	for _, p := range []string{stale, live, remote} {
		os.WriteFile(p, []byte("UNIT_ID=x\n"), 0o600)
	}
	if _, err := db.RecoverOrphans(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("a dead writer's temp file was kept")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("a live writer's fresh temp file was removed")
	}
	if _, err := os.Stat(remote); err != nil {
		t.Error("another host's fresh temp file was removed")
	}
}
