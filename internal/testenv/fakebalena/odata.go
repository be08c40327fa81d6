package fakebalena

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// query is the little of OData the SDK's calls use: $select, one
// $expand and one "<field> eq '<value>'" $filter.
type query struct {
	selects     []string
	expand      string
	filterField string
	filterValue string
}

var filterRE = regexp.MustCompile(`^([a-z_]+) eq '((?:[^']|'')*)'$`)

// parseQuery reads raw (already URL-encoded) into a query, allowing only
// the given $select fields, filter fields and $expand values. Anything
// else is an error, as the real API answers unknown fields with 400.
func parseQuery(raw string, fields, filters, expands []string) (query, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return query{}, fmt.Errorf("malformed query string: %w", err)
	}
	var q query
	for key, v := range vals {
		if len(v) != 1 {
			return query{}, fmt.Errorf("%s given %d times", key, len(v))
		}
		switch key {
		case "$select":
			for _, f := range strings.Split(v[0], ",") {
				if !slices.Contains(fields, f) {
					return query{}, fmt.Errorf("unknown field %q in $select", f)
				}
				q.selects = append(q.selects, f)
			}
		case "$expand":
			if !slices.Contains(expands, v[0]) {
				return query{}, fmt.Errorf("unsupported $expand %q", v[0])
			}
			q.expand = v[0]
		case "$filter":
			m := filterRE.FindStringSubmatch(v[0])
			if m == nil || !slices.Contains(filters, m[1]) {
				return query{}, fmt.Errorf("unsupported $filter %q", v[0])
			}
			q.filterField, q.filterValue = m[1], strings.ReplaceAll(m[2], "''", "'")
		default:
			return query{}, fmt.Errorf("unsupported query option %q", key)
		}
	}
	if len(q.selects) == 0 {
		q.selects = fields
	}
	return q, nil
}

// row keeps the selected fields of all.
func (q query) row(all map[string]any) map[string]any {
	out := make(map[string]any, len(q.selects)+1)
	for _, f := range q.selects {
		out[f] = all[f]
	}
	return out
}
