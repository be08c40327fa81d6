package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestConsoleFormat(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, "migdb-migrate", "console", false)
	l.Warn().Str("unit", "dev-1").Msg("host unreachable")
	line := strings.TrimSpace(b.String())
	re := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* migdb-migrate \d+ WARN\]: host unreachable unit=dev-1$`)
	if !re.MatchString(line) {
		t.Fatalf("line %q", line)
	}
}

func TestColorOnlyWhenWanted(t *testing.T) {
	var plain, colored bytes.Buffer
	lp := New(&plain, "x", "console", false)
	lc := New(&colored, "x", "console", true)
	lp.Error().Msg("boom")
	lc.Error().Msg("boom")
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(colored.String(), "\x1b[31mERROR") {
		t.Fatalf("plain %q colored %q", plain.String(), colored.String())
	}
}

// An explicit --color ON beats NO_COLOR, in every part of the line; off
// (or NO_COLOR without --color) leaves no escape anywhere.
func TestExplicitColorBeatsNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	var b bytes.Buffer
	l := New(&b, "x", "console", true)
	l.Error().Str("unit", "gw-1").Err(errors.New("boom")).Msg("failed")
	for _, want := range []string{"\x1b[31mERROR", "\x1b[36munit=", "\x1b[36merror=", "\x1b[31mboom"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("colored line lacks %q: %q", want, b.String())
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		setting string
		colored bool
	}{{"on", true}, {"off", false}, {"", false}} {
		path := filepath.Join(dir, "log-"+tc.setting)
		l, c, err := Open(Options{Binary: "x", To: path, Color: tc.setting})
		if err != nil {
			t.Fatal(err)
		}
		l.Warn().Str("unit", "gw-1").Msg("slow")
		c.Close()
		data, _ := os.ReadFile(path)
		if got := strings.Contains(string(data), "\x1b["); got != tc.colored {
			t.Errorf("--color %q with NO_COLOR set: colored %v, want %v: %q", tc.setting, got, tc.colored, data)
		}
	}
}

func TestJSONAndLogToDirectory(t *testing.T) {
	dir := t.TempDir()
	l, c, err := Open(Options{Binary: "migdb-check-done", To: dir, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	l.Info().Msg("hello")
	c.Close()
	matches, _ := filepath.Glob(filepath.Join(dir, "migdb-check-done-*.log"))
	if len(matches) != 1 {
		t.Fatalf("files %v", matches)
	}
	data, _ := os.ReadFile(matches[0])
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(data), &m); err != nil || m["message"] != "hello" || m["bin"] != "migdb-check-done" {
		t.Fatalf("json %s (%v)", data, err)
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("pw hunter2 token abc", "hunter2", "", "abc"); got != "pw *** token ***" {
		t.Fatal(got)
	}
}

func TestDebugIsQuiet(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, "x", "console", false)
	l.Debug().Msg("noise")
	l.Info().Msg("signal")
	if strings.Contains(b.String(), "noise") || !strings.Contains(b.String(), "signal") {
		t.Fatalf("%q", b.String())
	}
}
