package fakebalena

import (
	"net/http"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// deviceTypeExpand is the $expand of a device-type listing
// (`balena device-type list`).
const deviceTypeExpand = "is_of__cpu_architecture($select=slug),device_type_alias($select=is_referenced_by__alias)"

// knownType finds the type balena knows by slug or alias: the types of
// balena-migrate's table that are still in balena's contracts, as
// open-balena-api loads them. A retired type (genericx86-64) is unknown,
// as it is to the real server.
func knownType(slug string) (devicetype.Type, bool) {
	t, ok := devicetype.Lookup(slug)
	return t, ok && !t.Legacy
}

// aliasesOf lists every name balena takes for a type, its slug included,
// as the real API's device_type_alias does.
func aliasesOf(slug string) []string {
	return append([]string{slug}, devicetype.Aliases(slug)...)
}

// deviceTypes serves GET /v7/device_type: every type the fake knows, with
// its architecture and aliases. Like the real API it filters nothing:
// $select and this one $expand only.
func (a *API) deviceTypes(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.authUser(w, r) == nil {
		return
	}
	q, err := parseQuery(r.URL.RawQuery, []string{"slug", "name"}, nil, []string{deviceTypeExpand})
	if err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	rows := []map[string]any{}
	for _, t := range devicetype.Types() {
		if t.Legacy {
			continue
		}
		row := q.row(map[string]any{"slug": t.Slug, "name": t.Name})
		if q.expand != "" {
			var aliases []map[string]any
			for _, n := range aliasesOf(t.Slug) {
				aliases = append(aliases, map[string]any{"is_referenced_by__alias": n})
			}
			row["is_of__cpu_architecture"] = []map[string]any{{"slug": string(t.Arch)}}
			row["device_type_alias"] = aliases
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"d": rows})
}
