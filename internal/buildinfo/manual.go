package buildinfo

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Section is a part of a man page that a program's flags cannot give:
// EXIT STATUS, ENVIRONMENT, EXAMPLES, SEE ALSO. Each program says its own.
type Section struct {
	Title string // upper case, as man pages spell them
	Text  string // a paragraph before the items; may be empty
	Items []Item
}

// Item is one tagged paragraph: an exit code, a variable, a command line.
type Item struct {
	Tag, Text string
}

// sectionsKey keeps a program's sections in its cli.App until the man page
// is asked for.
const sectionsKey = "buildinfo.sections"

func sectionsOf(app *cli.App) []Section {
	s, _ := app.Metadata[sectionsKey].([]Section)
	return s
}

// troff renders the sections for the end of a man(7) page.
func troff(sections []Section) string {
	var b strings.Builder
	for _, s := range sections {
		b.WriteString(".SH " + strings.ToUpper(s.Title) + "\n")
		if s.Text != "" {
			b.WriteString(troffText(s.Text) + "\n")
		}
		for _, it := range s.Items {
			b.WriteString(".TP\n.B " + troffText(it.Tag) + "\n" + troffText(it.Text) + "\n")
		}
	}
	return b.String()
}

// troffText escapes text for troff: backslashes and hyphens (so that
// options stay options when copied), and a leading . or ' that would be
// read as a request.
func troffText(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
