package config

import (
	"os"
	"strconv"

	"github.com/urfave/cli/v2"
)

// Flags returns the command-line flags of bin's settings. Values are taken
// as strings and validated by Resolve, so errors can name their source.
func Flags(bin Binary) []cli.Flag {
	var out []cli.Flag
	for _, d := range Defs(bin) {
		aliases := d.Flags[1:]
		if d.Name == CfgFile && bin == AddUnit {
			aliases = nil // -c is not an add-unit option
		}
		// The default before the variable: "[X] (default)" would read as a
		// link in the markdown the man page is made from.
		usage := d.Usage
		if d.Default != "" {
			usage += " (default " + d.Default + ")"
		}
		if !d.NoEnv {
			usage += " [" + d.Name + "]"
		}
		if d.Kind == Bool {
			// A yes/no setting is a switch on the command line: --pretend.
			out = append(out, &cli.BoolFlag{Name: d.Flags[0], Aliases: aliases, Usage: usage})
			continue
		}
		out = append(out, &cli.StringFlag{Name: d.Flags[0], Aliases: aliases, Usage: usage})
	}
	return out
}

// FromCLI resolves bin's settings from the defaults, the MIG_CFG file, the
// environment and the command line, in that order of precedence: what the
// operator types now beats what a file says.
func FromCLI(c *cli.Context, bin Binary) (*Settings, error) {
	env := Layer{Source: "environment", Values: map[string]string{}, Sources: map[string]string{}}
	flags := Layer{Source: "command line", Values: map[string]string{}, Sources: map[string]string{}}
	for _, d := range Defs(bin) {
		if v, ok := os.LookupEnv(d.Name); ok && !d.NoEnv && v != "" {
			env.Values[d.Name] = v
			env.Sources[d.Name] = "environment variable " + d.Name
		}
		if c.IsSet(d.Flags[0]) {
			flags.Values[d.Name] = c.String(d.Flags[0])
			if d.Kind == Bool {
				flags.Values[d.Name] = strconv.FormatBool(c.Bool(d.Flags[0]))
			}
			flags.Sources[d.Name] = "flag --" + d.Flags[0]
		}
	}
	var layers []Layer
	var warns []string
	cfg := flags.Values[CfgFile]
	if cfg == "" {
		cfg = env.Values[CfgFile]
	}
	if cfg != "" {
		fl, w, err := ReadFileLayer(bin, cfg)
		if err != nil {
			return nil, err
		}
		layers = append(layers, fl)
		warns = w
	}
	layers = append(layers, env, flags)
	s, err := Resolve(bin, layers...)
	if err != nil {
		return nil, err
	}
	s.Warnings = append(s.Warnings, warns...)
	return s, nil
}
