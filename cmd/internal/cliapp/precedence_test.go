package cliapp

import (
	"os"
	"strings"
	"testing"
)

// Every example settings file states today's order in the words the
// programs' --help and man pages use (Precedence).
func TestExamplesStateThePrecedence(t *testing.T) {
	want := strings.TrimPrefix(Precedence, "Settings: ")
	for _, p := range []string{"../../../db-example/migdb.cfg", "../../../scripts/systemd/fleet1.env.example"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var comment []string
		for _, line := range strings.Split(string(data), "\n") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "#"); ok {
				comment = append(comment, strings.TrimSpace(c))
			}
		}
		if text := strings.Join(comment, " "); !strings.Contains(text, want) {
			t.Errorf("%s does not state the order of settings (%q):\n%s", p, want, text)
		}
	}
}
