package cliapp

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves the flags of args (after the program name) before its
// positional arguments, so `migdb-add-unit gw-0042 --host 10.0.0.5` means
// what it says: urfave/cli stops reading flags at the first positional
// argument. A "--" ends the flags as usual; the value of a flag that takes
// one moves with it.
func flagsFirst(flags []cli.Flag, args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	out := []string{args[0]}
	var positional []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i:]...)
			i = len(rest)
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				i++
				out = append(out, rest[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...)
}
