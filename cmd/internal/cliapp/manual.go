package cliapp

import (
	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
)

// manual is the end of bin's man page: what its flags cannot say.
func manual(bin config.Binary, examples []buildinfo.Item) []buildinfo.Section {
	var env []buildinfo.Item
	worker := false
	for _, d := range config.Defs(bin) {
		if d.NoEnv {
			continue
		}
		text := d.Usage
		if d.Default != "" {
			text += " (default " + d.Default + ")"
		}
		env = append(env, buildinfo.Item{Tag: d.Name, Text: text})
		worker = worker || d.Name == config.BalenaToken
	}
	if worker {
		// Where the balena CLI keeps its settings; the workers look there
		// when MIG_BALENA_API or MIG_BALENA_TOKEN is not given.
		env = append(env,
			buildinfo.Item{Tag: "BALENARC_BALENA_URL", Text: "the balena host of a self-hosted balena (openBalena), as for the balena CLI; its API is https://api.<host>"},
			buildinfo.Item{Tag: "BALENA_API_KEY", Text: "a balena API key, as for the balena CLI"},
			buildinfo.Item{Tag: "BALENARC_DATA_DIRECTORY", Text: "the balena CLI's data directory, holding its token file"},
			buildinfo.Item{Tag: "SSL_CERT_FILE", Text: "a PEM file of CA certificates to trust, for a balena API whose certificate comes from a private CA"},
		)
	}
	env = append(env, buildinfo.Item{Tag: "NO_COLOR", Text: "when set, the console log is not coloured unless --color ON is given"})
	sections := []buildinfo.Section{
		{Title: "EXIT STATUS", Items: exitStatus()},
		{Title: "ENVIRONMENT", Text: Precedence, Items: env},
	}
	if len(examples) > 0 {
		sections = append(sections, buildinfo.Section{Title: "EXAMPLES", Items: examples})
	}
	return append(sections, buildinfo.Section{Title: "SEE ALSO",
		Text: "migdb-add-unit(1), migdb-migrate(1), migdb-check-done(1), balena-migrate(1); the README and docs/ in /usr/share/doc/balena-migrate."})
}
