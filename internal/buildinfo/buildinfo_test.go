package buildinfo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"
)

var programs = []string{"migdb-add-unit", "migdb-migrate", "migdb-check-done", "balena-migrate"}

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildAll builds the four shipped programs with the given flags.
func buildAll(t *testing.T, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"build", "-o", dir + "/"}, flags...)
	for _, p := range programs {
		args = append(args, "../../cmd/"+p)
	}
	if out, err := exec.Command(goBin(), args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func versionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestEveryProgramPrintsItsStampedVersion(t *testing.T) {
	pkg := "github.com/fleetmig/balena-migrate/internal/buildinfo"
	stamped := buildAll(t, "-ldflags", "-X "+pkg+".version=1.4.2 -X "+pkg+".commit=0123456789ab -X "+pkg+".date=2026-11-28T07:00:00Z")
	for _, p := range programs {
		want := p + " version 1.4.2 (commit 0123456789ab, built 2026-11-28T07:00:00Z)"
		if got := versionOf(t, filepath.Join(stamped, p)); got != want {
			t.Errorf("stamped %s --version = %q, want %q", p, got, want)
		}
	}
	checkManPages(t, stamped)
}

// checkManPages wants each program's man page to say more than --help: its
// exit status, its environment and examples, as troff groff reads without
// a warning.
func checkManPages(t *testing.T, dir string) {
	groff := testenv.NeedProgram(t, "groff")
	for _, p := range programs {
		out, err := exec.Command(filepath.Join(dir, p), "--generate-man").Output()
		if err != nil {
			t.Fatalf("%s --generate-man: %v", p, err)
		}
		env := `.B MIG_DB_DIR` + "\n"
		if p == "balena-migrate" {
			env = ".B NO_OS_CHECK\n"
		}
		for _, want := range []string{".TH " + p + " 1", ".SH EXIT STATUS\n", ".TP\n.B 2\n", ".SH ENVIRONMENT\n", env, ".SH EXAMPLES\n", ".SH SEE ALSO\n"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("%s's man page lacks %q", p, want)
			}
		}
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(out)
		if warn, err := cmd.CombinedOutput(); err != nil || len(warn) > 0 {
			t.Errorf("groff on %s's man page: %v\n%s", p, err, warn)
		}
	}
}

// A binary built with a plain `go build` in a clone names the commit it was
// built from, and the commit's time, as Go recorded them.
func TestPlainBuildNamesItsCommit(t *testing.T) {
	git := testenv.NeedProgram(t, "git")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, ".git"))
	testenv.Need(t, err == nil && st.IsDir(), "a git clone of the repository (Go records no commit in a git worktree, whose .git is a file)")
	gitOut := func(args ...string) string {
		cmd := exec.Command(git, append([]string{"-C", root}, args...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	rev := gitOut("rev-parse", "--short=12", "HEAD")
	when := gitOut("log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")
	// -buildvcs=auto is go build's default; it is given so that a GOFLAGS
	// of the environment cannot turn the recording off.
	plain := buildAll(t, "-buildvcs=auto")
	for _, p := range programs {
		got := versionOf(t, filepath.Join(plain, p))
		if !strings.HasPrefix(got, p+" version ") || strings.HasPrefix(got, p+" version dev ") ||
			!strings.Contains(got, "(commit "+rev) || !strings.HasSuffix(got, "committed "+when+")") {
			t.Errorf("plain-built %s --version = %q, want Go's module version, commit %s and its time %s", p, got, rev, when)
		}
	}
}

func TestResolve(t *testing.T) {
	vcs := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/fleetmig/balena-migrate", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "a41f6693f3d23243333d9678afea1348f556735d"
	clean := vcs("v0.0.0-20261207185310-a41f6693f3d2", "vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-07T18:53:10Z", "vcs.modified", "false")
	for _, tc := range []struct {
		name string
		s    stamp
		bi   *debug.BuildInfo
		want string
	}{
		{"stamped by scripts/release", stamp{"1.4.2", "0123456789ab", "2026-11-28T07:00:00Z"}, clean,
			"1.4.2 (commit 0123456789ab, built 2026-11-28T07:00:00Z)"},
		{"go build in a clone", stamp{"dev", "", ""}, clean,
			"v0.0.0-20261207185310-a41f6693f3d2 (commit a41f6693f3d2, committed 2026-12-07T18:53:10Z)"},
		{"go build of a changed tree", stamp{"dev", "", ""},
			vcs("v0.0.0-20261207185310-a41f6693f3d2+dirty", "vcs.revision", rev, "vcs.time", "2026-12-07T18:53:10Z", "vcs.modified", "true"),
			"v0.0.0-20261207185310-a41f6693f3d2+dirty (commit a41f6693f3d2-dirty, committed 2026-12-07T18:53:10Z)"},
		{"go install module@version", stamp{"dev", "", ""}, vcs("v1.4.2"), "v1.4.2 (commit unknown, built unknown)"},
		{"no version known", stamp{"dev", "", ""}, vcs("(devel)"), "dev (commit unknown, built unknown)"},
		{"no build information", stamp{"dev", "", ""}, nil, "dev (commit unknown, built unknown)"},
		{"only the version stamped", stamp{"2.0.0", "", ""}, clean, "2.0.0 (commit a41f6693f3d2, committed 2026-12-07T18:53:10Z)"},
	} {
		if got := resolve(tc.s, tc.bi).String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// A test binary carries no VCS information and no module version.
	if i := Get(); i.Version != "dev" || i.Commit == "" || i.Date != "" {
		t.Errorf("unstamped test binary: Get() = %+v, want version dev, a commit or unknown, no build date", i)
	}
}

// testApp is shaped like the shipped programs: flags with aliases and
// values, and (optionally) subcommands.
func testApp(out *bytes.Buffer, ran *bool) *cli.App {
	app := &cli.App{
		Name:   "migdb-try",
		Usage:  "try things",
		Writer: out,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "units at `N` once"},
			&cli.BoolFlag{Name: "once", Usage: "handle what's due, then exit"},
		},
		Commands: []*cli.Command{{
			Name: "stage2", Usage: "second stage",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "no-reboot", Usage: "stay up"}},
		}},
		Action: func(*cli.Context) error { *ran = true; return nil },
	}
	Setup(app)
	return app
}

func TestDocumentationFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string // substrings of the output
		wantRun bool
	}{
		{[]string{"--generate-man"}, []string{".TH migdb-try 1", "try things", "--jobs", "--once", "stage2"}, false},
		{[]string{"--generate-completion", "fish"}, []string{
			"complete -c migdb-try -n 'not __fish_seen_subcommand_from stage2 help h' -l jobs -s j -r -d 'units at N once'",
			"-l once -d 'handle what\\'s due, then exit'",
			"-a 'stage2' -d 'second stage'",
			"-n '__fish_seen_subcommand_from stage2' -l no-reboot -d 'stay up'",
		}, false},
		{[]string{"--generate-completion", "bash"}, []string{"complete -o default -F _migdb_try migdb-try"}, false},
		{[]string{"--once"}, nil, true},
	} {
		var out bytes.Buffer
		ran := false
		if err := testApp(&out, &ran).Run(append([]string{"migdb-try"}, tc.args...)); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
		if ran != tc.wantRun {
			t.Errorf("%v: action ran = %v, want %v", tc.args, ran, tc.wantRun)
		}
		if tc.wantRun && out.Len() != 0 {
			t.Errorf("%v: printed documentation on a normal run:\n%s", tc.args, out.String())
		}
	}
	var out bytes.Buffer
	ran := false
	err := testApp(&out, &ran).Run([]string{"migdb-try", "--generate-completion", "tcsh"})
	if !usage.Is(err) || !strings.Contains(err.Error(), "tcsh") {
		t.Errorf("unknown shell: err = %v, want a usage error naming it", err)
	}
}

// The sections a program gives end its man page, escaped for troff.
func TestManPageSections(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Name: "migdb-one", Writer: &out, Action: func(*cli.Context) error { return nil }}
	Setup(app, Section{Title: "Exit status", Items: []Item{{"2", "bad usage"}}},
		Section{Title: "EXAMPLES", Text: ".starts with a dot", Items: []Item{{"migdb-one --once", `a \ and a - in it`}}})
	if err := app.Run([]string{"migdb-one", "--generate-man"}); err != nil {
		t.Fatal(err)
	}
	want := ".SH EXIT STATUS\n.TP\n.B 2\nbad usage\n.SH EXAMPLES\n\\&.starts with a dot\n.TP\n.B migdb\\-one \\-\\-once\na \\e and a \\- in it\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("man page ends\n%s\nwant it to end\n%s", out.String()[max(0, out.Len()-300):], want)
	}
}

// A program without subcommands gets a man page that promises none.
func TestManPageWithoutCommands(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Name: "migdb-one", ArgsUsage: "<unit-id>", HideHelpCommand: true, Writer: &out, Action: func(*cli.Context) error { return nil }}
	Setup(app)
	if err := app.Run([]string{"migdb-one", "--generate-man"}); err != nil {
		t.Fatal(err)
	}
	if man := out.String(); !strings.Contains(man, "migdb-one [OPTIONS] <unit-id>") || strings.Contains(man, "COMMAND OPTIONS") {
		t.Errorf("man page usage:\n%s", man)
	}
}

// The bash script completes in a real bash as a user would see it.
func TestBashCompletionInBash(t *testing.T) {
	bash := testenv.NeedProgram(t, "bash")
	var script bytes.Buffer
	ran := false
	if err := testApp(&script, &ran).Run([]string{"migdb-try", "--generate-completion", "bash"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // words typed so far; the last one is being completed
		want string
	}{
		{"migdb-try --j", "--jobs"},
		{"migdb-try --", "--jobs --once --help --version"},
		{"migdb-try -", "--jobs -j --once --help -h --version -v"},
		{"migdb-try st", "stage2"},
		{"migdb-try stage2 --", "--no-reboot"},
		{"migdb-try --once x", ""}, // not a flag, not first: files (complete -o default)
	} {
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		cmd := exec.Command(bash, "--norc", "-c", script.String()+`
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _migdb_try; echo "${COMPREPLY[*]}"`, "bash")
		cmd.Args = append(cmd.Args, words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("completing %q = %q, want %q", tc.line, got, tc.want)
		}
	}
}
