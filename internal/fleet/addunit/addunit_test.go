package addunit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "addunit-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "migdb-add-unit")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/fleetmig/balena-migrate/cmd/migdb-add-unit").CombinedOutput()
	if err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code        int
	out, errOut string
}

func run(t *testing.T, base string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--base", base, "--color", "OFF"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + base}, env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, o.String(), e.String()}
}

// files lists every file under base (relative), to prove "nothing written".
func files(t *testing.T, base string) []string {
	var out []string
	filepath.Walk(base, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != base {
			rel, _ := filepath.Rel(base, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestEightRacingProcessesOneWinner(t *testing.T) {
	base := t.TempDir()
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(t, base, nil, "--host", "10.0.0.1", "same-id")
		}()
	}
	wg.Wait()
	wins := 0
	for _, r := range results {
		switch r.code {
		case 0:
			wins++
		case 1:
			if !strings.Contains(r.errOut, "already") || !strings.Contains(r.errOut, "unit-same-id-") {
				t.Errorf("loser message %q does not name the existing file", r.errOut)
			}
		default:
			t.Errorf("exit %d: %s", r.code, r.errOut)
		}
	}
	// The state directories, as `ls db/*/` sees them (not .ids/).
	units, _ := filepath.Glob(filepath.Join(base, "db", "[a-z]*", "*same-id*"))
	if wins != 1 || len(units) != 1 {
		t.Fatalf("%d winners, files %v", wins, units)
	}
	left, _ := os.ReadDir(filepath.Join(base, "db", "tmp"))
	if len(left) != 0 {
		t.Fatalf("tmp/ holds %v", left)
	}
}

func TestHostileIDsWriteNothing(t *testing.T) {
	for _, id := range []string{"../x", "a/b", "$(id)", "-x", "", "with space", "new\nline", ".x", "`id`"} {
		base := t.TempDir()
		r := run(t, base, nil, "--", id)
		if r.code != 2 || !strings.Contains(r.errOut, "invalid unit id") {
			t.Errorf("id %q: exit %d %q", id, r.code, r.errOut)
		}
		if f := files(t, base); len(f) != 0 {
			t.Errorf("id %q wrote %v", id, f)
		}
		if r := run(t, base, nil, "--retry", id); r.code != 2 || len(files(t, base)) != 0 {
			t.Errorf("--retry %q: exit %d, files %v", id, r.code, files(t, base))
		}
	}
}

func TestBadSettingsExit2(t *testing.T) {
	base := t.TempDir()
	r := run(t, base, []string{"MIG_SSH_PORT=abc"}, "dev")
	if r.code != 2 || !strings.Contains(r.errOut, "MIG_SSH_PORT") || !strings.Contains(r.errOut, "environment variable") {
		t.Fatalf("exit %d %q", r.code, r.errOut)
	}
	cfg := filepath.Join(base, "bad.cfg")
	os.WriteFile(cfg, []byte("MIG_SSH_PORT=0\n"), 0o600)
	r = run(t, base, nil, "--cfg", cfg, "dev")
	if r.code != 2 || !strings.Contains(r.errOut, "settings file "+cfg) {
		t.Fatalf("exit %d %q", r.code, r.errOut)
	}
	if r := run(t, base, nil, "--cfg", filepath.Join(base, "nope"), "dev"); r.code != 2 {
		t.Fatalf("unreadable cfg: exit %d", r.code)
	}
	if f := files(t, base); len(f) != 1 {
		t.Fatalf("wrote %v", f)
	}
}

func TestPrecedenceIntoUnitFileAndSecrets(t *testing.T) {
	base := t.TempDir()
	cfg := filepath.Join(base, "mig.cfg")
	os.WriteFile(cfg, []byte("MIG_SSH_USER=fromfile\nMIG_BALENA_VER=2.113.0\nMIG_APP=org/file\n"), 0o600)
	// Flags beat the environment, which beats the settings file; flags
	// may follow the unit id.
	r := run(t, base, []string{"MIG_SSH_USER=fromenv", "MIG_APP=org/fleet", "MIG_SSH_PORT=2022"},
		"--cfg", cfg, "dev-9", "-u", "fromflag", "-p", "2222", "--passwd", "hunter2 $x")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.errOut)
	}
	if strings.Contains(r.out+r.errOut, "hunter2") {
		t.Fatal("password reached the log")
	}
	paths, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-dev-9-*"))
	data, _ := os.ReadFile(paths[0])
	st, _ := os.Stat(paths[0])
	for _, want := range []string{"MIG_SSH_USER=fromflag", "MIG_APP=org/fleet", "MIG_BALENA_VER=2.113.0", "MIG_SSH_PORT=2222", `MIG_SSH_PASSWD="hunter2 \$x"`, "STATUS=INIT"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("unit file lacks %s:\n%s", want, data)
		}
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
}

func TestCSVAllOrNothing(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "good.csv")
	os.WriteFile(good, []byte("unit_id,host,user,port,passwd,ssh_opts\nd1,10.0.0.1,pi,22,,\nd2,10.0.0.2,pi,2222,pw,-o ConnectTimeout=5\n"), 0o600)
	bad := filepath.Join(base, "bad.csv")
	os.WriteFile(bad, []byte("unit_id,host,port\nd3,10.0.0.3,22\nd4,10.0.0.4,notaport\n"), 0o600)
	dup := filepath.Join(base, "dup.csv")
	os.WriteFile(dup, []byte("unit_id,host\nd5,h\nd1,h\n"), 0o600)
	hostile := filepath.Join(base, "hostile.csv")
	os.WriteFile(hostile, []byte("unit_id,host\nd6,h\n$(id),h\n"), 0o600)
	if r := run(t, base, nil, "--from-csv", bad); r.code != 2 || !strings.Contains(r.errOut, "line 3") {
		t.Fatalf("bad csv: exit %d %q", r.code, r.errOut)
	}
	if r := run(t, base, nil, "--from-csv", hostile); r.code != 2 || !strings.Contains(r.errOut, "line 3") {
		t.Fatalf("hostile csv: exit %d %q", r.code, r.errOut)
	}
	if units, _ := filepath.Glob(filepath.Join(base, "db", "units", "*")); len(units) != 0 {
		t.Fatalf("a bad CSV wrote %v", units)
	}
	r := run(t, base, nil, "--from-csv", good)
	if r.code != 0 || !strings.Contains(r.out, "added 2 units") {
		t.Fatalf("good csv: exit %d %q %q", r.code, r.out, r.errOut)
	}
	if r := run(t, base, nil, "--from-csv", dup); r.code != 1 || !strings.Contains(r.errOut, "d1") {
		t.Fatalf("existing id: exit %d %q", r.code, r.errOut)
	}
	units, _ := filepath.Glob(filepath.Join(base, "db", "units", "*"))
	if len(units) != 2 {
		t.Fatalf("units %v", units)
	}
	d2, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-d2-*"))
	data, _ := os.ReadFile(d2[0])
	if !strings.Contains(string(data), `MIG_SSH_OPTS="-o ConnectTimeout=5"`) || !strings.Contains(string(data), "MIG_SSH_PORT=2222") {
		t.Fatalf("d2:\n%s", data)
	}
}

func TestRetryFromFail(t *testing.T) {
	base := t.TempDir()
	if r := run(t, base, nil, "dev-r"); r.code != 0 {
		t.Fatal(r.errOut)
	}
	src, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-dev-r-*"))
	tag := src[0][strings.LastIndex(src[0], "-")+1:]
	data, _ := os.ReadFile(src[0])
	data = append(data, []byte("FAIL_TS=1\nFAIL_CLASS=refused\nFAIL_MSG=\"no route\"\nMIG_CONN_RETRIES=3\nDUE_TS=99999999999\nDEVICE_ID=abc\n")...)
	os.WriteFile(filepath.Join(base, "db", "fail", "fail-dev-r-"+tag), data, 0o600)
	os.Remove(src[0])
	r := run(t, base, nil, "--retry", "dev-r")
	if r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.errOut)
	}
	back, _ := os.ReadFile(filepath.Join(base, "db", "units", "unit-dev-r-"+tag))
	s := string(back)
	if strings.Contains(s, "FAIL_") || strings.Contains(s, "MIG_CONN_RETRIES") || strings.Contains(s, "DUE_TS") || !strings.Contains(s, "DEVICE_ID=abc") {
		t.Fatalf("after retry:\n%s", s)
	}
	if r := run(t, base, nil, "--retry", "nope"); r.code != 1 || !strings.Contains(r.errOut, "no unit nope") {
		t.Fatalf("unknown: exit %d %q", r.code, r.errOut)
	}
}

// The first add makes the database and says so; later ones do not. A
// --retry never makes one.
func TestFirstAddMakesTheDatabaseAndSaysSo(t *testing.T) {
	base := t.TempDir()
	if r := run(t, base, nil, "--retry", "gw-1"); r.code != 2 || !strings.Contains(r.errOut, filepath.Join(base, "db")+" does not exist") || len(files(t, base)) != 0 {
		t.Fatalf("--retry without a database: exit %d %q, files %v", r.code, r.errOut, files(t, base))
	}
	r := run(t, base, nil, "--host", "10.0.0.1", "gw-1")
	if r.code != 0 || !strings.Contains(r.out, "created a new database in "+filepath.Join(base, "db")) {
		t.Fatalf("first add: exit %d, out %q, err %q", r.code, r.out, r.errOut)
	}
	r = run(t, base, nil, "--host", "10.0.0.2", "gw-2")
	if r.code != 0 || strings.Contains(r.out, "created") {
		t.Fatalf("second add: exit %d, out %q, err %q", r.code, r.out, r.errOut)
	}
	// The db/ directory given as the base is refused, and nothing is made in it.
	dbDir := filepath.Join(base, "db")
	if r := run(t, dbDir, nil, "--host", "10.0.0.3", "gw-3"); r.code != 2 || !strings.Contains(r.errOut, "its parent, "+base) {
		t.Fatalf("--base db/: exit %d %q", r.code, r.errOut)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "db")); err == nil {
		t.Fatal("a database was made inside db/")
	}
}

// What operators type from habit in --host is refused, with the flag that
// takes the other part, and nothing is written.
func TestHostThatCannotBeOneIsRefused(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"10.20.0.300", "not an IPv4 address"},
		{"pi@host", "--user pi"},
		{"host:22", "--port 22"},
		{"", "is empty"},
	} {
		base := t.TempDir()
		r := run(t, base, nil, "--host", tc.host, "gw-1")
		if r.code != 2 || !strings.Contains(r.errOut, "MIG_SSH_HOST (from flag --host)") || !strings.Contains(r.errOut, tc.want) {
			t.Errorf("--host %q: exit %d %q", tc.host, r.code, r.errOut)
		}
		if f := files(t, base); len(f) != 0 {
			t.Errorf("--host %q wrote %v", tc.host, f)
		}
	}
	// In a CSV too: the row is named, nothing is written.
	base := t.TempDir()
	csv := filepath.Join(base, "fleet.csv")
	os.WriteFile(csv, []byte("unit_id,host\ngw-1,10.0.0.1\ngw-2,pi@10.0.0.2\n"), 0o600)
	if r := run(t, base, nil, "--from-csv", csv); r.code != 2 || !strings.Contains(r.errOut, "line 3") || !strings.Contains(r.errOut, "--user pi") {
		t.Errorf("CSV with user@host: exit %d %q", r.code, r.errOut)
	}
	if f := files(t, base); len(f) != 1 {
		t.Errorf("the CSV wrote %v", f)
	}
}

// --retry ID with unit settings given as flags applies them; settings from
// the environment or a settings file are not forced onto the unit.
func TestRetryAppliesNewValues(t *testing.T) {
	base := t.TempDir()
	if r := run(t, base, nil, "--host", "10.0.0.1", "-u", "pi", "--app", "org/a", "gw-r"); r.code != 0 {
		t.Fatal(r.errOut)
	}
	src, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-gw-r-*"))
	data, _ := os.ReadFile(src[0])
	os.WriteFile(filepath.Join(base, "db", "fail", "fail-"+strings.TrimPrefix(filepath.Base(src[0]), "unit-")),
		append(data, "FAIL_CLASS=unreachable\nFAIL_MSG=\"no route\"\nFAIL_TS=1\n"...), 0o600)
	os.Remove(src[0])
	r := run(t, base, []string{"MIG_APP=org/from-env"}, "--retry", "gw-r", "--host", "10.0.0.9", "-p", "2222")
	if r.code != 0 || !strings.Contains(r.out, "MIG_SSH_HOST") {
		t.Fatalf("retry: exit %d, out %q, err %q", r.code, r.out, r.errOut)
	}
	back, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-gw-r-*"))
	if len(back) != 1 {
		t.Fatalf("units/ holds %v", back)
	}
	data, _ = os.ReadFile(back[0])
	for _, want := range []string{"MIG_SSH_HOST=10.0.0.9", "MIG_SSH_PORT=2222", "MIG_SSH_USER=pi", "MIG_APP=org/a"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("retried unit lacks %s:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "FAIL_") || strings.Contains(string(data), "10.0.0.1") {
		t.Errorf("retried unit keeps old values:\n%s", data)
	}
	// A bad new value leaves the unit in fail/.
	os.Rename(back[0], filepath.Join(base, "db", "fail", "fail-"+strings.TrimPrefix(filepath.Base(back[0]), "unit-")))
	if r := run(t, base, nil, "--retry", "gw-r", "--host", "pi@10.0.0.9"); r.code != 2 {
		t.Fatalf("retry with a bad host: exit %d %q", r.code, r.errOut)
	}
	if m, _ := filepath.Glob(filepath.Join(base, "db", "fail", "fail-gw-r-*")); len(m) != 1 {
		t.Fatalf("after a refused retry fail/ holds %v", m)
	}
}

// `migdb-add-unit help` is the help, not a unit called help.
func TestHelpIsHelp(t *testing.T) {
	base := t.TempDir()
	r := run(t, base, nil, "help")
	if r.code != 0 || !strings.Contains(r.out, "USAGE:") || len(files(t, base)) != 0 {
		t.Fatalf("help: exit %d, out %q, files %v", r.code, r.out, files(t, base))
	}
}

// TestGroupAndWindow: --group, --window and --tz go into the unit (and a
// CSV's group column), in the submission order; a bad value writes
// nothing.
func TestGroupAndWindow(t *testing.T) {
	base := t.TempDir()
	if r := run(t, base, nil, "--host", "10.0.0.1", "--group", "site-17", "--window", "22:00-05:00", "--tz", "Europe/Berlin", "gw-1"); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	csv := filepath.Join(base, "units.csv")
	os.WriteFile(csv, []byte("unit_id,host,group\ngw-2,10.0.0.2,site-18\ngw-3,10.0.0.3,site-17\n"), 0o600)
	if r := run(t, base, nil, "--from-csv", csv); r.code != 0 {
		t.Fatalf("csv: %+v", r)
	}
	for id, want := range map[string][]string{
		"gw-1": {"MIG_GROUP=site-17", "MIG_WINDOW=22:00-05:00", "MIG_TZ=Europe/Berlin"},
		"gw-2": {"MIG_GROUP=site-18"}, "gw-3": {"MIG_GROUP=site-17"},
	} {
		paths, _ := filepath.Glob(filepath.Join(base, "db", "units", "unit-"+id+"-*"))
		if len(paths) != 1 {
			t.Fatalf("%s: %v", id, paths)
		}
		data, _ := os.ReadFile(paths[0])
		for _, w := range want {
			if !strings.Contains(string(data), w+"\n") {
				t.Errorf("%s lacks %s:\n%s", id, w, data)
			}
		}
	}
	order, _ := os.ReadFile(filepath.Join(base, "db", ".ids", ".order"))
	if string(order) != "gw-1\ngw-2\ngw-3\n" {
		t.Errorf("submission order %q", order)
	}
	before := files(t, base)
	for _, bad := range [][]string{{"--group", "-x"}, {"--window", "22-5"}, {"--tz", "Mars/Base"}} {
		r := run(t, base, nil, append([]string{"--host", "10.0.0.9"}, append(bad, "gw-9")...)...)
		if r.code != 2 || !strings.Contains(r.errOut, bad[1]) {
			t.Errorf("%v: %+v", bad, r)
		}
	}
	if after := files(t, base); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("a refused unit wrote files: %v", after)
	}
}
