package logging

import (
	"bytes"
	"encoding/json"
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
