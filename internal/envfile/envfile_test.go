package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bashValues sources path with a clean bash and returns the values of keys.
func bashValues(t *testing.T, path string, keys []string) []string {
	t.Helper()
	var script strings.Builder
	script.WriteString("set -eu; source \"$1\"; printf '%s\\0'")
	for _, k := range keys {
		fmt.Fprintf(&script, ` "$%s"`, k)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", script.String(), "bash", path)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash could not source %s: %v\n%s", path, err, cmdStderr(err))
	}
	vals := strings.Split(string(out), "\x00")
	return vals[:len(vals)-1]
}

func cmdStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// alphabet is weighted toward the characters shells treat specially.
var alphabet = []rune("aZ09 _-.:/@+,=\"'$`\\#!;&|<>(){}[]*?~^%\t€ñ日🙂")

func randomValue(r *rand.Rand) string {
	n := r.Intn(24)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[r.Intn(len(alphabet))])
	}
	return b.String()
}

// TestBashAndGodotenvAgree writes random values and reads them back with both
// godotenv and a real bash; every stored value must come back byte for byte
// from both, and sourcing must never run anything.
func TestBashAndGodotenvAgree(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is required for this test: install it (scripts/test does)")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "executed")
	hostile := []string{
		"$(touch " + marker + ")", "`touch " + marker + "`", "${HOME}", "$HOME", "a\\nb", "\\$x",
		"x # y", "#start", "!event", "'single'", "\"dq", "semi;touch " + marker, "\\\"", "a\\\\\\$B",
		"", " lead", "trail ", "日本語", "ends with \"", "$", "\\$(x)", "a$\\b",
	}
	seed := int64(os.Getpid())
	r := rand.New(rand.NewSource(seed))
	stored, refused := 0, 0
	for round := 0; round < 40; round++ {
		f := New()
		var keys, want []string
		values := hostile
		if round > 0 {
			values = make([]string, 50)
			for i := range values {
				values[i] = randomValue(r)
			}
		}
		for i, v := range values {
			k := fmt.Sprintf("K%d", i)
			if err := f.Set(k, v); err != nil {
				if !errors.Is(err, ErrValue) || CheckValue(v) == nil {
					t.Fatalf("Set(%q) failed unexpectedly: %v", v, err)
				}
				refused++
				continue
			}
			keys = append(keys, k)
			want = append(want, v)
		}
		data, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("unit-%d", round))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatalf("seed %d: godotenv rejected our file: %v\n%s", seed, err, data)
		}
		fromBash := bashValues(t, path, keys)
		for i, k := range keys {
			if g := got.Value(k); g != want[i] {
				t.Errorf("seed %d: godotenv read %s=%q, wrote %q (line %s)", seed, k, g, want[i], lineOf(data, k))
			}
			if fromBash[i] != want[i] {
				t.Errorf("seed %d: bash read %s=%q, wrote %q (line %s)", seed, k, fromBash[i], want[i], lineOf(data, k))
			}
			stored++
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("sourcing a unit file executed a command from a value")
	}
	if stored < 1000 {
		t.Fatalf("only %d values were stored (%d refused): the generator is too narrow", stored, refused)
	}
	t.Logf("%d values agreed in bash and godotenv, %d refused", stored, refused)
}

func lineOf(data []byte, key string) string {
	for _, l := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(key+"=")) {
			return string(l)
		}
	}
	return "?"
}

func TestCheckValueRefuses(t *testing.T) {
	for _, v := range []string{"a\nb", "a\rb", "x\x00", `ends\`, `it's "quoted"`} {
		if err := CheckValue(v); !errors.Is(err, ErrValue) {
			t.Errorf("CheckValue(%q) = %v, want ErrValue", v, err)
		}
	}
}

func TestParseKeepsOrderAndUnknownFields(t *testing.T) {
	in := "# comment\nZED=1\nexport ALPHA=\"two words\"\nMID='x'\n"
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range f.Pairs() {
		keys = append(keys, p.Key)
	}
	if strings.Join(keys, ",") != "ZED,ALPHA,MID" {
		t.Fatalf("order = %v", keys)
	}
	if err := f.Set("NEW", "v"); err != nil {
		t.Fatal(err)
	}
	out, _ := f.Marshal()
	if string(out) != "ZED=1\nALPHA=\"two words\"\nMID=x\nNEW=v\n" {
		t.Fatalf("marshal = %q", out)
	}
}

func TestSetRefusesBadKey(t *testing.T) {
	for _, k := range []string{"", "1A", "A-B", "A B", "$(x)"} {
		if err := New().Set(k, "v"); !errors.Is(err, ErrKey) {
			t.Errorf("Set(%q) = %v, want ErrKey", k, err)
		}
	}
}

// Hand-written files with comments read as bash reads them.
func TestParseCommentsLikeBash(t *testing.T) {
	data := "A= # \"TRUE\"\nB=#x\nC=v # note\nD=\t#{ }\"TRUE\"\nexport E= # 10\nF=\"q\" # c\n"
	path := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := []string{"A", "B", "C", "D", "E", "F"}
	want := bashValues(t, path, keys)
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if got := f.Value(k); got != want[i] {
			t.Errorf("%s: godotenv %q, bash %q", k, got, want[i])
		}
	}
}
