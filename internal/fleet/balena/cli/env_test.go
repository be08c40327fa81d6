package cli

import (
	"slices"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

func TestCLIGetsTheWorkersAPIAndTokenDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    balena.Options
		want []string
	}{
		{"balenaCloud", balena.Options{APIURL: balena.DefaultAPIURL}, nil},
		{"self-hosted", balena.Options{APIURL: "https://api.balena.example.com"}, []string{"BALENARC_BALENA_URL=balena.example.com"}},
		{"token file", balena.Options{APIURL: balena.DefaultAPIURL, TokenFile: "/srv/balena/token"}, []string{"BALENARC_DATA_DIRECTORY=/srv/balena"}},
		{"token file by another name", balena.Options{APIURL: balena.DefaultAPIURL, TokenFile: "/srv/key.txt"}, nil},
	} {
		got := cliEnv(tc.o)[2:]
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
