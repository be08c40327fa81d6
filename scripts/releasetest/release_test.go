// Package releasetest proves scripts/release: it builds a release, checks
// every artefact against SHA256SUMS and its architecture, installs the
// host's .deb with dpkg into a clean Debian 12 root, and there runs each
// program's --version and --help and each worker once, as its systemd unit
// would, against the fake balena API on the host's loopback. The ARM
// device builds of scripts/build-balena-migrate run under qemu's user
// emulation (arm_test.go).
package releasetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

const (
	repo    = "../.."
	version = "2.0.1" // given as v2.0.1: the v is dropped
	epoch   = 1700000000
	built   = "2023-11-14T22:13:20Z" // SOURCE_DATE_EPOCH=epoch
)

var (
	fleetPrograms = []string{"migdb-add-unit", "migdb-migrate", "migdb-check-done"}
	programs      = append(slices.Clone(fleetPrograms), "balena-migrate")
	workers       = []string{"migdb-migrate", "migdb-check-done"}
	// device architecture → GOARCH, GOARM
	deviceArchs = map[string][2]string{
		"amd64": {"amd64", ""}, "386": {"386", ""}, "armv6": {"arm", "6"}, "armv7": {"arm", "7"}, "arm64": {"arm64", ""},
	}
	machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "386": elf.EM_386, "arm": elf.EM_ARM, "arm64": elf.EM_AARCH64}
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestReleaseInstallsOnDebian12(t *testing.T) {
	testenv.NeedRoot(t, "dpkg installs the .deb into a chroot")
	for _, p := range []string{"go", "git", "dpkg-deb", "gzip", "chroot", "tar", "zstd", "mount"} {
		testenv.NeedProgram(t, p)
	}
	tarball := bookwormTarball(t)
	testenv.NeedFile(t, tarball, "run scripts/test-setup.d/20-stage1-chroot; scripts/test does")
	host := runtime.GOARCH
	testenv.Need(t, host == "amd64" || host == "arm64", "an amd64 or arm64 machine (the .deb's architectures)")

	out := filepath.Join(t.TempDir(), "release")
	start := time.Now()
	cmd := exec.Command(filepath.Join(repo, "scripts/release"), "--version", "v"+version, out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(epoch))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, b)
	}
	t.Logf("scripts/release took %v", time.Since(start).Round(time.Second))
	checkArtefacts(t, out)

	root := unpackRoot(t, tarball)
	deb := "balena-migrate_" + version + "_" + host + ".deb"
	data, err := os.ReadFile(filepath.Join(out, deb))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp", deb), data, 0o644); err != nil {
		t.Fatal(err)
	}
	inRoot(t, root, "", nil, "dpkg", "-i", "/tmp/"+deb)
	migdb := checkInstall(t, root)
	for _, p := range programs {
		want := p + " version " + version + " (commit " + strings.TrimSpace(run(t, "git", "-C", repo, "rev-parse", "--short=12", "HEAD")) + ", built " + built + ")"
		if got := strings.TrimSpace(inRoot(t, root, "migdb", nil, p, "--version")); got != want {
			t.Errorf("installed %s --version = %q, want %q", p, got, want)
		}
		help := inRoot(t, root, "migdb", nil, p, "--help")
		if !strings.Contains(help, "USAGE:") || !strings.Contains(help, p) {
			t.Errorf("installed %s --help does not describe its usage:\n%s", p, help)
		}
	}
	runWorkers(t, root, migdb)
	if units, _ := filepath.Glob(filepath.Join(root, "var/lib/migdb/ci/db/units/unit-gw-0001-*")); len(units) != 1 {
		t.Errorf("after the workers' runs: want one unit file for gw-0001 in units/, got %v", units)
	}

	inRoot(t, root, "", nil, "dpkg", "--purge", "balena-migrate")
	for _, p := range programs {
		if _, err := os.Stat(filepath.Join(root, "usr/bin", p)); err == nil {
			t.Errorf("/usr/bin/%s is still there after dpkg --purge", p)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/migdb/ci/db/units")); err != nil {
		t.Errorf("dpkg --purge removed the fleet database: %v", err)
	}
}

// checkArtefacts holds the release to its list: names, checksums, and
// static binaries of the right architecture.
func checkArtefacts(t *testing.T, out string) {
	var want []string
	for _, arch := range []string{"amd64", "arm64"} {
		for _, p := range fleetPrograms {
			want = append(want, p+"-"+arch)
		}
		want = append(want, "balena-migrate_"+version+"_"+arch+".deb")
	}
	for a := range deviceArchs {
		want = append(want, "balena-migrate-"+a)
	}
	want = append(want, "SHA256SUMS")
	slices.Sort(want)
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("release files:\n got %v\nwant %v", got, want)
	}

	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not '<sum>  <file>'", line)
		}
		listed[name] = sum
	}
	for _, name := range want {
		if name == "SHA256SUMS" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if listed[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("SHA256SUMS says %q for %s, the file's is %x", listed[name], name, sum)
		}
		st, _ := os.Stat(filepath.Join(out, name))
		t.Logf("%-50s %8d KiB", name, st.Size()/1024)
	}
	if len(listed) != len(want)-1 {
		t.Errorf("SHA256SUMS lists %d files, want %d", len(listed), len(want)-1)
	}

	for _, arch := range []string{"amd64", "arm64"} {
		for _, p := range fleetPrograms {
			checkBinary(t, filepath.Join(out, p+"-"+arch), arch, "")
		}
	}
	for a, goarch := range deviceArchs {
		checkBinary(t, filepath.Join(out, "balena-migrate-"+a), goarch[0], goarch[1])
	}

	// The arm64 package holds the same files as the amd64 one, built for arm64.
	lists := map[string][]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		deb := filepath.Join(out, "balena-migrate_"+version+"_"+arch+".deb")
		fields := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture")
		if want := "Package: balena-migrate\nVersion: " + version + "\nArchitecture: " + arch + "\n"; fields != want {
			t.Errorf("%s control fields:\n%s\nwant\n%s", deb, fields, want)
		}
		for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
			f := strings.Fields(line)
			lists[arch] = append(lists[arch], f[0]+" "+f[1]+" "+f[len(f)-1])
		}
		dir := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, dir)
		for _, p := range programs {
			checkBinary(t, filepath.Join(dir, "usr/bin", p), arch, "")
		}
	}
	if !slices.Equal(lists["amd64"], lists["arm64"]) {
		t.Errorf("the two packages differ in their files:\namd64 %v\narm64 %v", lists["amd64"], lists["arm64"])
	}
}

// checkBinary wants a static Linux executable for goarch (and goarm).
func checkBinary(t *testing.T, path, goarch, goarm string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != machines[goarch] {
		t.Errorf("%s is built for %v, want %v", path, f.Machine, machines[goarch])
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (has an ELF interpreter)", path)
		}
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "linux" || settings["GOARCH"] != goarch || settings["GOARM"] != goarm || settings["CGO_ENABLED"] != "0" {
		t.Errorf("%s: GOOS=%s GOARCH=%s GOARM=%s CGO_ENABLED=%s, want linux %s %q 0",
			path, settings["GOOS"], settings["GOARCH"], settings["GOARM"], settings["CGO_ENABLED"], goarch, goarm)
	}
}

// bookwormTarball is the Debian 12 root scripts/test-setup.d/20-stage1-chroot
// caches, named after its suite and that script's hash (as internal/stage1's
// chroot tests find it).
func bookwormTarball(t *testing.T) string {
	script, err := os.ReadFile(filepath.Join(repo, "scripts/test-setup.d/20-stage1-chroot"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	cache := os.Getenv("BALENA_MIGRATE_TEST_CACHE")
	if cache == "" {
		cache = "/var/cache/balena-migrate-test"
	}
	return filepath.Join(cache, "debian-bookworm-chroot-"+hex.EncodeToString(sum[:])[:16]+".tar.zst")
}

// unpackRoot unpacks the cached root into a fresh directory with its own
// /proc; nothing of the host is bound into it.
func unpackRoot(t *testing.T, tarball string) string {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, "tar", "-C", root, "--numeric-owner", "--xattrs", "-I", "zstd", "-xf", tarball)
	run(t, "mount", "-t", "proc", "proc", filepath.Join(root, "proc"))
	t.Cleanup(func() {
		if exec.Command("umount", filepath.Join(root, "proc")).Run() != nil {
			exec.Command("umount", "-l", filepath.Join(root, "proc")).Run()
		}
	})
	t.Logf("Debian 12 root unpacked in %v", time.Since(start).Round(time.Millisecond))
	return root
}

// inRoot runs a command in the root as user ("" is root) with a clean
// environment plus env, and returns its output; it must succeed.
func inRoot(t *testing.T, root, user string, env []string, args ...string) string {
	t.Helper()
	out, err := inRootErr(root, user, env, args...)
	if err != nil {
		t.Fatalf("in the Debian 12 root, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func inRootErr(root, user string, env []string, args ...string) (string, error) {
	cargs := []string{}
	home := "/root"
	if user != "" {
		cargs = append(cargs, "--userspec="+user)
		home = "/var/lib/migdb"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chroot", append(append(cargs, root), args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=" + home}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type account struct{ uid, gid int }

// checkInstall checks what the package's postinst made and the files it
// shipped, and returns the migdb account.
func checkInstall(t *testing.T, root string) account {
	if s := inRoot(t, root, "", nil, "dpkg-query", "-W", "-f", "${Status} ${Version}", "balena-migrate"); s != "install ok installed "+version {
		t.Errorf("dpkg-query: %q, want installed %s", s, version)
	}
	pw := strings.Split(strings.TrimSpace(inRoot(t, root, "", nil, "getent", "passwd", "migdb")), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/migdb" || pw[6] != "/usr/sbin/nologin" {
		t.Fatalf("migdb account %v: want home /var/lib/migdb, shell /usr/sbin/nologin", pw)
	}
	uid, _ := strconv.Atoi(pw[2])
	gid, _ := strconv.Atoi(pw[3])
	if uid == 0 || uid >= 1000 {
		t.Errorf("migdb has uid %d, want a system uid", uid)
	}
	for _, d := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{{"var/lib/migdb", uid, gid, 0o700}, {"var/log/migdb", uid, gid, 0o750}, {"etc/migdb", 0, gid, 0o750}} {
		st, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("postinst did not make /%s: %v", d.path, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != d.uid || int(sys.Gid) != d.gid || st.Mode().Perm() != d.mode || !st.IsDir() {
			t.Errorf("/%s: %d:%d %v, want a directory %d:%d %v", d.path, sys.Uid, sys.Gid, st.Mode(), d.uid, d.gid, d.mode)
		}
	}
	for _, p := range programs {
		f, err := os.Open(filepath.Join(root, "usr/share/man/man1", p+".1.gz"))
		if err != nil {
			t.Errorf("man page: %v", err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		man, err := io.ReadAll(zr)
		f.Close()
		if err != nil || !bytes.Contains(man, []byte(".TH "+p+" 1")) || !bytes.Contains(man, []byte("version")) ||
			!bytes.Contains(man, []byte(".SH EXIT STATUS")) || !bytes.Contains(man, []byte(".SH EXAMPLES")) {
			t.Errorf("%s.1.gz is not its man page (%v):\n%s", p, err, man)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/share/fish/vendor_completions.d", p+".fish")); err != nil {
			t.Errorf("fish completion: %v", err)
		}
	}
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/balena-migrate/copyright"))
	if err != nil {
		t.Errorf("the package has no copyright file: %v", err)
	}
	var installed []string
	for _, p := range programs {
		installed = append(installed, filepath.Join(root, "usr/bin", p))
	}
	checkCopyright(t, string(copyright), installed...)
	for _, f := range []string{"README.md.gz", "docs/README.md.gz", "docs/device-protocol.md.gz"} {
		if _, err := os.Stat(filepath.Join(root, "usr/share/doc/balena-migrate", f)); err != nil {
			t.Errorf("documentation: %v", err)
		}
	}
	// The shipped bash completion completes in the root's own bash.
	got := inRoot(t, root, "", nil, "bash", "-c", `. /usr/share/bash-completion/completions/migdb-migrate
COMP_WORDS=(migdb-migrate --jobs 4 --onc); COMP_CWORD=3; _migdb_migrate; echo "${COMPREPLY[*]}"`)
	if strings.TrimSpace(got) != "--once" {
		t.Errorf("bash completion of 'migdb-migrate --jobs 4 --onc' = %q, want --once", got)
	}
	return account{uid, gid}
}

// runWorkers runs each worker with --once the way its installed systemd
// unit would: its ExecStart, as its User, with the instance's
// EnvironmentFile, against the fake API on the host. Before the operator
// has submitted anything there is no database, and the workers refuse to
// start; the first migdb-add-unit makes it.
func runWorkers(t *testing.T, root string, migdb account) {
	const token = "ci-token-7c1e"
	api := fakebalena.Start(fakebalena.Config{})
	t.Cleanup(api.Close)
	api.AddUser("operator", token)
	api.AddApp("myorg/gateways", "raspberrypi4-64")

	write := func(path, data string, perm os.FileMode, owner account) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner.uid, owner.gid); err != nil {
			t.Fatal(err)
		}
		home := filepath.Join(root, "var/lib/migdb")
		for d := filepath.Dir(p); strings.HasPrefix(d, home+"/"); d = filepath.Dir(d) {
			if err := os.Chown(d, owner.uid, owner.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := strings.Join([]string{
		"MIG_DB_DIR=/var/lib/migdb/ci", "MIG_APP=myorg/gateways", "MIG_BALENA_VER=2.113.0",
		"MIG_CFG_DIR=/var/lib/migdb/migratecfg", "MIG_BALENA_API=" + api.URL(), "MIG_JOBS=2",
		"MIG_MIN_AGE=3600", // the unit submitted below is left alone
	}, "\n") + "\n"
	write("etc/migdb/ci.env", env, 0o640, account{0, migdb.gid}) // as README says
	write("var/lib/migdb/.balena/token", token+"\n", 0o600, migdb)
	stage1, err := os.ReadFile(filepath.Join(root, "usr/bin/balena-migrate"))
	if err != nil {
		t.Fatal(err)
	}
	write("var/lib/migdb/migratecfg/balena-migrate", string(stage1), 0o755, migdb)

	type service struct {
		argv, vars []string
		user       string
	}
	services := map[string]service{}
	for _, w := range workers {
		unit := readUnit(t, filepath.Join(root, "lib/systemd/system", w+"@.service"), "ci")
		if unit["User"] != "migdb" || unit["Group"] != "migdb" {
			t.Errorf("%s@.service runs as %q:%q, want migdb:migdb", w, unit["User"], unit["Group"])
		}
		argv := strings.Fields(unit["ExecStart"])
		if len(argv) == 0 || argv[0] != "/usr/bin/"+w {
			t.Fatalf("%s@.service ExecStart=%q, want /usr/bin/%s ...", w, unit["ExecStart"], w)
		}
		envFile, err := os.ReadFile(filepath.Join(root, unit["EnvironmentFile"]))
		if err != nil {
			t.Fatalf("%s@ci.service EnvironmentFile: %v", w, err)
		}
		var vars []string
		for _, line := range strings.Split(string(envFile), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				vars = append(vars, line)
			}
		}
		services[w] = service{argv, vars, unit["User"] + ":" + unit["Group"]}
	}
	db := filepath.Join(root, "var/lib/migdb/ci/db")
	for _, w := range workers {
		sv := services[w]
		out, err := inRootErr(root, sv.user, sv.vars, append(sv.argv, "--once")...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "/var/lib/migdb/ci/db") {
			t.Errorf("%s --once before any unit was submitted: %v, want exit code 2 naming /var/lib/migdb/ci/db\n%s", w, err, out)
		}
		if _, err := os.Stat(db); err == nil {
			t.Fatalf("%s --once made a database", w)
		}
	}
	// The operator submits as migdb with the same settings file.
	out := inRoot(t, root, "migdb:migdb", nil, "migdb-add-unit", "--cfg", "/etc/migdb/ci.env", "--host", "10.0.0.5", "gw-0001")
	if !strings.Contains(out, "created a new database in /var/lib/migdb/ci/db") {
		t.Errorf("the first migdb-add-unit does not say it made the database:\n%s", out)
	}
	for _, w := range workers {
		argv, vars, user := services[w].argv, services[w].vars, services[w].user
		before := api.Calls(fakebalena.RouteWhoami)
		out := inRoot(t, root, user, vars, append(argv, "--once")...)
		t.Logf("%s@ci --once:\n%s", w, out)
		if api.Calls(fakebalena.RouteWhoami) != before+1 {
			t.Errorf("%s --once did not check its credentials with the fake API on the host", w)
		}
		st, err := os.Stat(filepath.Join(root, "var/lib/migdb/ci/db/units"))
		if err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != migdb.uid {
			t.Errorf("%s --once: the database is not there, owned by migdb (%v)", w, err)
		}
		// A token the API refuses is bad settings: exit 2, nothing run.
		out, err = inRootErr(root, user, append(vars, "MIG_BALENA_TOKEN=wrong"), append(argv, "--once")...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%s --once with a refused token: %v, want exit code 2\n%s", w, err, out)
		}
	}
}

// readUnit reads the [Service] keys of a systemd template unit for
// instance, expanding %i.
func readUnit(t *testing.T, path, instance string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = strings.ReplaceAll(v, "%i", instance)
		}
	}
	return keys
}
