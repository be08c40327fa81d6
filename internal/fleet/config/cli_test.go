package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestFromCLIPrecedence: flags beat the environment, the environment beats the
// settings file, the file beats the defaults.
func TestFromCLIPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fleet.env")
	os.WriteFile(file, []byte("MIG_JOBS=4\nMIG_SSH_PORT=2300\nMIG_CONN_TIMEOUT=11\nMIG_SSH_USER=pi\n"), 0o600)
	t.Setenv("MIG_SSH_PORT", "2200")
	t.Setenv("MIG_CONN_TIMEOUT", "12")
	t.Setenv("MIG_CFG", file)
	var s *Settings
	app := &cli.App{Name: "t", Flags: Flags(Migrate), Action: func(c *cli.Context) error {
		var err error
		s, err = FromCLI(c, Migrate)
		return err
	}}
	if err := app.Run([]string{"t", "--jobs", "8", "--conn-timeout", "13"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want, src string }{
		{Jobs, "8", "flag --jobs"},                             // flag over file
		{ConnTimeout, "13", "flag --conn-timeout"},             // flag over env and file
		{SSHPort, "2200", "environment variable MIG_SSH_PORT"}, // env over file
		{SSHUser, "pi", "settings file " + file},               // file over default
		{TxTimeout, "1200", "default"},                         // default
	} {
		if s.Raw(c.name) != c.want || s.Source(c.name) != c.src {
			t.Errorf("%s = %q from %q, want %q from %q", c.name, s.Raw(c.name), s.Source(c.name), c.want, c.src)
		}
	}
	if s.Process.Jobs != 8 {
		t.Errorf("typed Jobs = %d", s.Process.Jobs)
	}
}
