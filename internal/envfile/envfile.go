// Package envfile reads and writes KEY=VALUE files that mean the same thing to
// godotenv and to bash's `source`.
//
// Unit files, the MIG_CFG settings file and the stage-2 config all use this
// format. Operators source unit files from their own scripts, so a value must
// never expand or execute anything when bash reads it, and must come back
// byte for byte when godotenv reads it.
package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/joho/godotenv"
)

// Pair is one KEY=VALUE line.
type Pair struct {
	Key, Value string
}

// File is an ordered set of pairs. Order is kept so a rewritten file reads
// like the original with new fields appended.
type File struct {
	pairs []Pair
}

var (
	keyRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bareRe = regexp.MustCompile(`^[A-Za-z0-9._:/@+,=-]*$`)
	// lineKeyRe finds the key of each assignment line, to recover the order
	// godotenv's map loses.
	lineKeyRe = regexp.MustCompile(`(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*[=:]`)
)

// ErrValue marks a value that cannot be stored so that bash and godotenv agree.
var ErrValue = errors.New("value cannot be stored")

// ErrKey marks a key that is not a shell variable name.
var ErrKey = errors.New("invalid key")

// emptyWithComment matches `KEY= # comment`: bash reads an empty value and
// a comment, godotenv reads the comment as the value (config files written
// for the original tool are full of `DEBUG= # "TRUE"`).
var emptyWithComment = regexp.MustCompile(`(?m)^([ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=)[ \t]+#.*$`)

// Parse reads data with godotenv.
func Parse(data []byte) (*File, error) {
	data = emptyWithComment.ReplaceAll(data, []byte("$1"))
	m, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return nil, err
	}
	f := &File{}
	seen := make(map[string]bool, len(m))
	for _, sub := range lineKeyRe.FindAllSubmatch(data, -1) {
		k := string(sub[1])
		if v, ok := m[k]; ok && !seen[k] {
			seen[k] = true
			f.pairs = append(f.pairs, Pair{k, v})
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		f.pairs = append(f.pairs, Pair{k, m[k]})
	}
	return f, nil
}

// Read parses the file at path.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// New returns an empty file.
func New() *File { return &File{} }

// Get returns the value of key and whether it is set.
func (f *File) Get(key string) (string, bool) {
	for _, p := range f.pairs {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// Value returns the value of key, or "" when it is not set.
func (f *File) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// Set adds or replaces key. It refuses keys and values the format cannot hold.
func (f *File) Set(key, value string) error {
	if !keyRe.MatchString(key) {
		return fmt.Errorf("%w %q: use letters, digits and _", ErrKey, key)
	}
	if err := CheckValue(value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	for i := range f.pairs {
		if f.pairs[i].Key == key {
			f.pairs[i].Value = value
			return nil
		}
	}
	f.pairs = append(f.pairs, Pair{key, value})
	return nil
}

// Delete removes key if present.
func (f *File) Delete(key string) {
	out := f.pairs[:0]
	for _, p := range f.pairs {
		if p.Key != key {
			out = append(out, p)
		}
	}
	f.pairs = out
}

// Pairs returns a copy of the pairs in order.
func (f *File) Pairs() []Pair {
	return append([]Pair(nil), f.pairs...)
}

// Clone returns an independent copy.
func (f *File) Clone() *File {
	return &File{pairs: f.Pairs()}
}

// Map returns the pairs as a map.
func (f *File) Map() map[string]string {
	m := make(map[string]string, len(f.pairs))
	for _, p := range f.pairs {
		m[p.Key] = p.Value
	}
	return m
}

// Marshal renders the file, one KEY=VALUE per line.
func (f *File) Marshal() ([]byte, error) {
	var b bytes.Buffer
	for _, p := range f.pairs {
		q, err := Quote(p.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Key, err)
		}
		b.WriteString(p.Key)
		b.WriteByte('=')
		b.WriteString(q)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// CheckValue reports whether value can be written so that bash and godotenv
// read the same bytes.
func CheckValue(value string) error {
	switch {
	case strings.ContainsAny(value, "\n\r"):
		return fmt.Errorf("%w: it contains a line break", ErrValue)
	case strings.ContainsRune(value, 0):
		return fmt.Errorf("%w: it contains a NUL byte", ErrValue)
	case strings.HasSuffix(value, `\`):
		// godotenv takes a quote after a backslash as escaped, whatever
		// escaped the backslash, so no quoting can end a value with one.
		return fmt.Errorf("%w: it ends with a backslash", ErrValue)
	case strings.HasSuffix(value, `"`) && strings.ContainsRune(value, '\''):
		// Only single quotes carry a trailing double quote through
		// godotenv, and they cannot hold a single quote.
		return fmt.Errorf("%w: it ends with \" and also contains '", ErrValue)
	}
	return nil
}

// Quote renders value for the right-hand side of KEY=.
func Quote(value string) (string, error) {
	if err := CheckValue(value); err != nil {
		return "", err
	}
	if bareRe.MatchString(value) {
		return value, nil
	}
	if strings.HasSuffix(value, `"`) {
		// godotenv trims every quote character at the end of a double-quoted
		// value, escaped or not; single quotes avoid that.
		return "'" + value + "'", nil
	}
	var b strings.Builder
	b.Grow(len(value) + 8)
	b.WriteByte('"')
	for _, r := range value {
		switch r {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String(), nil
}
