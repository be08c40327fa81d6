package cliapp

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "host"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}},
		&cli.BoolFlag{Name: "once"},
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"p", "gw-0042", "--host", "10.0.0.5"}, []string{"p", "--host", "10.0.0.5", "gw-0042"}},
		{[]string{"p", "gw-1", "-u", "pi", "--once", "x"}, []string{"p", "-u", "pi", "--once", "gw-1", "x"}},
		{[]string{"p", "gw-1", "--host=10.0.0.5"}, []string{"p", "--host=10.0.0.5", "gw-1"}},
		{[]string{"p", "--host", "h", "gw-1"}, []string{"p", "--host", "h", "gw-1"}},
		{[]string{"p", "gw-1", "--", "--host"}, []string{"p", "gw-1", "--", "--host"}},
		{[]string{"p"}, []string{"p"}},
	} {
		if got := flagsFirst(flags, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
