package buildinfo

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
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

// buildAll builds the four shipped programs with the given -ldflags.
func buildAll(t *testing.T, ldflags string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/", "-ldflags", ldflags}
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
	stamped := buildAll(t, "-X "+pkg+".version=1.4.2 -X "+pkg+".commit=0123456789ab -X "+pkg+".date=2026-11-28T07:00:00Z")
	plain := buildAll(t, "")
	for _, p := range programs {
		want := p + " version 1.4.2 (commit 0123456789ab, built 2026-11-28T07:00:00Z)"
		if got := versionOf(t, filepath.Join(stamped, p)); got != want {
			t.Errorf("stamped %s --version = %q, want %q", p, got, want)
		}
		if got := versionOf(t, filepath.Join(plain, p)); !strings.HasPrefix(got, p+" version dev (commit ") {
			t.Errorf("plain-built %s --version = %q, want it to say version dev", p, got)
		}
	}
}

func TestInfoString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{"1.0.0", "abc", "2026-01-02T03:04:05Z"}, "1.0.0 (commit abc, built 2026-01-02T03:04:05Z)"},
		{Info{"dev", "unknown", "unknown"}, "dev (commit unknown, built unknown)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
		}
	}
	if i := Get(); i.Version != "dev" || i.Commit == "" || i.Date != "unknown" {
		t.Errorf("unstamped test binary: Get() = %+v, want version dev, a commit or unknown, date unknown", i)
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
