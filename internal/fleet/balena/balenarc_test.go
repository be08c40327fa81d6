package balena

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCLIConfig(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{}
	c := CLIConfig{Getenv: func(k string) string { return env[k] }, Home: home}
	check := func(name, wantURL, wantSrc string) {
		t.Helper()
		url, src, err := c.APIURL()
		if err != nil || url != wantURL || src != wantSrc {
			t.Errorf("%s: %q from %q (%v), want %q from %q", name, url, src, err, wantURL, wantSrc)
		}
	}
	check("nothing", DefaultAPIURL, "default")
	rc := filepath.Join(home, ".balenarc.yml")
	os.WriteFile(rc, []byte("# openBalena\nbalenaUrl: 'balena.example.com'\nproxy: null\n"), 0o600)
	check("balenarc", "https://api.balena.example.com", "balenaUrl in "+rc)
	env["BALENARC_BALENA_URL"] = "open.example.org"
	check("environment beats balenarc", "https://api.open.example.org", "BALENARC_BALENA_URL")
	os.WriteFile(rc, []byte("balenaUrl: [oops\n"), 0o600)
	delete(env, "BALENARC_BALENA_URL")
	if _, _, err := c.APIURL(); err == nil {
		t.Error("broken ~/.balenarc.yml accepted")
	}

	if o := c.Credentials(Options{Token: "explicit"}); o.Token != "explicit" || o.TokenFile != "" {
		t.Errorf("explicit token replaced: %+v", o)
	}
	env["BALENARC_DATA_DIRECTORY"] = "/srv/balena"
	if o := c.Credentials(Options{}); o.TokenFile != "/srv/balena/token" || o.Token != "" {
		t.Errorf("data directory: %+v", o)
	}
	env["BALENA_API_KEY"] = " key-1 "
	if o := c.Credentials(Options{}); o.Token != "key-1" {
		t.Errorf("BALENA_API_KEY: %+v", o)
	}
}
