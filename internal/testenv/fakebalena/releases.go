package fakebalena

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// AddOSRelease makes balena list balenaOS version for deviceType, as
// balenaCloud lists its host OS releases (open-balena lists none).
func (a *API) AddOSRelease(deviceType, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.osReleases[deviceType] = append([]string{version}, a.osReleases[deviceType]...)
}

// hostReleaseRE is the one release query the fleet tools make: the
// successful releases of the host app of one device type.
var hostReleaseRE = regexp.MustCompile(`^status eq 'success' and belongs_to__application/any\(a:a/is_host eq true and ` +
	`a/is_for__device_type/any\(d:d/slug eq '([^']*)'\)\)$`)

// releases serves GET /v7/release for that query.
func (a *API) releases(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.authUser(w, r) == nil {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	m := hostReleaseRE.FindStringSubmatch(q.Get("$filter"))
	if err != nil || m == nil || q.Get("$select") != "raw_version" {
		http.Error(w, "Bad Request: unsupported release query", http.StatusBadRequest)
		return
	}
	rows := []map[string]any{}
	for _, v := range a.osReleases[m[1]] {
		rows = append(rows, map[string]any{"raw_version": v})
	}
	writeJSON(w, http.StatusOK, map[string]any{"d": rows})
}

// oldOSVersion says whether balena refuses to make a config.json for v:
// versions it cannot read and 1.2.0 and older (it answers both alike).
func oldOSVersion(v string) bool {
	v = strings.TrimPrefix(v, "v")
	f := strings.SplitN(strings.FieldsFunc(v, func(r rune) bool { return r == '+' || r == '-' })[0], ".", 4)
	if len(f) < 3 {
		return true
	}
	n := make([]int, 3)
	for i := range n {
		var err error
		if n[i], err = strconv.Atoi(f[i]); err != nil {
			return true
		}
	}
	return n[0] < 1 || (n[0] == 1 && (n[1] < 2 || (n[1] == 2 && n[2] == 0)))
}
