package buildinfo

import (
	"fmt"
	"io"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/urfave/cli/v2"
)

// The hidden flags scripts/release uses to write the man page and the
// completion files shipped in the .deb.
const (
	manFlag        = "generate-man"
	completionFlag = "generate-completion"
)

// Setup gives app its --version text and the hidden documentation flags;
// the man page ends with the given sections (exit status, environment,
// examples). Call it once, before app.Run.
func Setup(app *cli.App, sections ...Section) {
	app.Version = Get().String()
	if len(sections) > 0 {
		if app.Metadata == nil {
			app.Metadata = map[string]any{}
		}
		app.Metadata[sectionsKey] = sections
	}
	app.Flags = append(app.Flags,
		&cli.BoolFlag{Name: manFlag, Hidden: true, Usage: "print the man page (troff) and exit"},
		&cli.StringFlag{Name: completionFlag, Hidden: true, Usage: "print the completion script for SHELL (bash, fish) and exit"},
	)
	action := app.Action
	app.Action = func(c *cli.Context) error {
		switch {
		case c.Bool(manFlag):
			if c.App.UsageText == "" && !hasCommands(c.App) {
				// urfave's man template would promise subcommands.
				c.App.UsageText = strings.TrimSpace(c.App.Name + " [OPTIONS] " + c.App.ArgsUsage)
			}
			man, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man page: %w", err)
			}
			_, err = io.WriteString(c.App.Writer, strings.TrimRight(man, "\n")+"\n"+troff(sectionsOf(c.App)))
			return err
		case c.IsSet(completionFlag):
			return WriteCompletion(c.App.Writer, c.App, c.String(completionFlag))
		case action == nil:
			return cli.ShowAppHelp(c)
		}
		return action(c)
	}
}

// hasCommands reports whether app has subcommands besides "help".
func hasCommands(app *cli.App) bool {
	for _, c := range app.VisibleCommands() {
		if c.Name != "help" {
			return true
		}
	}
	return false
}

// WriteCompletion writes app's completion script for shell: its flags
// (with their help text, for fish) and its subcommands.
func WriteCompletion(w io.Writer, app *cli.App, shell string) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion(app))
		return err
	case "fish":
		_, err := io.WriteString(w, fishCompletion(app))
		return err
	}
	return usage.Errorf("--%s %q: want bash or fish", completionFlag, shell)
}

// flagWords is every spelling of the visible flags: "--name" or "-n".
func flagWords(flags []cli.Flag) []string {
	var out []string
	for _, f := range visible(flags) {
		for _, n := range f.Names() {
			out = append(out, dashed(n))
		}
	}
	return out
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func visible(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// bashCompletion completes flag names (those of the subcommand once one is
// on the line), subcommand names in first position, and file names
// everywhere else.
func bashCompletion(app *cli.App) string {
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s; written by `%s --%s bash`.\n", app.Name, app.Name, completionFlag)
	fmt.Fprintf(&b, "%s() {\n", fn)
	fmt.Fprintf(&b, "\tlocal cur=${COMP_WORDS[COMP_CWORD]} words=%q i\n", strings.Join(flagWords(app.Flags), " "))
	var names []string
	if cmds := app.VisibleCommands(); len(cmds) > 0 {
		b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase ${COMP_WORDS[i]} in\n")
		for _, c := range cmds {
			names = append(names, c.Name)
			fmt.Fprintf(&b, "\t\t%s) words=%q ;;\n", strings.Join(c.Names(), "|"), strings.Join(flagWords(c.Flags), " "))
		}
		b.WriteString("\t\tesac\n\tdone\n")
	}
	b.WriteString("\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n")
	if len(names) > 0 {
		fmt.Fprintf(&b, "\telif ((COMP_CWORD == 1)); then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n", strings.Join(names, " "))
	}
	b.WriteString("\tfi\n}\n")
	fmt.Fprintf(&b, "complete -o default -F %s %s\n", fn, app.Name)
	return b.String()
}

// fishCompletion describes every flag with its help text; subcommands are
// offered until one is on the line, and their flags after it.
func fishCompletion(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s; written by `%s --%s fish`.\n", app.Name, app.Name, completionFlag)
	cmds := app.VisibleCommands()
	var names []string
	for _, c := range cmds {
		names = append(names, c.Names()...)
	}
	cond := ""
	if len(names) > 0 {
		cond = "not __fish_seen_subcommand_from " + strings.Join(names, " ")
	}
	fishFlags(&b, app.Name, cond, app.Flags)
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c %s -f -n %s -a %s -d %s\n", app.Name, fishQuote(cond), fishQuote(c.Name), fishQuote(c.Usage))
		fishFlags(&b, app.Name, "__fish_seen_subcommand_from "+strings.Join(c.Names(), " "), c.Flags)
	}
	return b.String()
}

func fishFlags(b *strings.Builder, prog, cond string, flags []cli.Flag) {
	for _, f := range visible(flags) {
		line := "complete -c " + prog
		if cond != "" {
			line += " -n " + fishQuote(cond)
		}
		for _, n := range f.Names() {
			if len(n) == 1 {
				line += " -s " + n
			} else {
				line += " -l " + n
			}
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			if df.TakesValue() {
				line += " -r"
			}
			// Backquotes only mark the value's placeholder in --help.
			if u := strings.ReplaceAll(df.GetUsage(), "`", ""); u != "" {
				line += " -d " + fishQuote(u)
			}
		}
		b.WriteString(line + "\n")
	}
}

// fishQuote single-quotes s for fish, where only \ and ' are special.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
