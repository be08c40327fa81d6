package fakebalena

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// patchDevice serves PATCH /v7/device(<id>) and PATCH
// /v7/device?$filter=uuid eq '<uuid>' with a user token: the fields this
// project sets, device_name and the dashboard's provisioning_state and
// provisioning_progress.
func (a *API) patchDevice(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var req struct {
		Name     *string `json:"device_name"`
		State    *string `json:"provisioning_state"`
		Progress *int    `json:"provisioning_progress"`
	}
	if a.authUser(w, r) == nil || !decodeJSON(w, data, err, &req, false) {
		return
	}
	var d *Device
	if m := deviceIDRE.FindStringSubmatch(r.PathValue("resource")); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		d = a.deviceByID(id)
	} else if q, err := parseQuery(r.URL.RawQuery, nil, []string{"uuid"}, nil); r.PathValue("resource") == "device" &&
		err == nil && q.filterField == "uuid" {
		d = a.devices[q.filterValue]
	} else {
		http.NotFound(w, r)
		return
	}
	switch {
	case d == nil:
		// Like the real API, a PATCH that matches nothing changes nothing.
		w.WriteHeader(http.StatusOK)
		return
	case req.Name == nil && req.State == nil && req.Progress == nil:
		http.Error(w, "Bad Request: nothing to change", http.StatusBadRequest)
		return
	case req.Name != nil && (*req.Name == "" || len(*req.Name) > 255):
		http.Error(w, "Bad Request: device_name must be 1 to 255 characters", http.StatusBadRequest)
		return
	}
	if req.Name != nil {
		d.Name = *req.Name
	}
	if req.State != nil {
		d.ProvisioningState = *req.State
	}
	if req.Progress != nil {
		p := *req.Progress
		d.ProvisioningProgress = &p
	}
	w.WriteHeader(http.StatusOK)
}

// addTag serves POST /v7/device_tag: a tag on a device, 409 when the
// device has a tag with that key already.
func (a *API) addTag(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var req struct {
		Device int64  `json:"device"`
		Key    string `json:"tag_key"`
		Value  string `json:"value"`
	}
	if a.authUser(w, r) == nil || !decodeJSON(w, data, err, &req, false) {
		return
	}
	d := a.deviceByID(req.Device)
	switch {
	case d == nil:
		http.Error(w, "Bad Request: no such device", http.StatusBadRequest)
		return
	case req.Key == "":
		http.Error(w, "Bad Request: tag_key must not be empty", http.StatusBadRequest)
		return
	}
	if _, dup := d.Tags[req.Key]; dup {
		http.Error(w, `"device" and "tag_key" must be unique.`, http.StatusConflict)
		return
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	d.Tags[req.Key] = req.Value
	writeJSON(w, http.StatusCreated, map[string]any{"id": a.id(), "device": map[string]any{"__id": d.ID},
		"tag_key": req.Key, "value": req.Value})
}

// tagFilterRE is the PATCH of one device's tag: by device id and key.
var tagFilterRE = regexp.MustCompile(`^device eq ([0-9]+) and tag_key eq '((?:[^']|'')*)'$`)

// patchTag serves PATCH /v7/device_tag?$filter=device eq <id> and
// tag_key eq '<key>': the tag's new value. Like the real API, a filter
// that matches nothing changes nothing.
func (a *API) patchTag(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var req struct {
		Value *string `json:"value"`
	}
	if a.authUser(w, r) == nil || !decodeJSON(w, data, err, &req, false) {
		return
	}
	q, perr := url.ParseQuery(r.URL.RawQuery)
	m := tagFilterRE.FindStringSubmatch(q.Get("$filter"))
	if perr != nil || m == nil || req.Value == nil {
		http.Error(w, "Bad Request: unsupported device_tag PATCH", http.StatusBadRequest)
		return
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	key := strings.ReplaceAll(m[2], "''", "'")
	if d := a.deviceByID(id); d != nil {
		if _, ok := d.Tags[key]; ok {
			d.Tags[key] = *req.Value
		}
	}
	w.WriteHeader(http.StatusOK)
}

// ProvisioningKey is a provisioning key the fake issued (the key itself
// is not shown).
type ProvisioningKey struct {
	AppID   int64
	Expires time.Time // zero: never
}

// ProvisioningKeys lists the provisioning keys issued so far, by
// /api-key/v2/ and inside /download-config replies, soonest expiry first
// and the ones that never expire last.
func (a *API) ProvisioningKeys() []ProvisioningKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ProvisioningKey, 0, len(a.provKeys))
	for _, k := range a.provKeys {
		out = append(out, ProvisioningKey{AppID: k.appID, Expires: k.expires})
	}
	sort.Slice(out, func(i, j int) bool {
		ei, ej := out[i].Expires, out[j].Expires
		if ei.IsZero() || ej.IsZero() {
			return !ei.IsZero() && ej.IsZero()
		}
		return ei.Before(ej)
	})
	return out
}

// UnexpiredProvisioningKeys counts the provisioning keys still valid at t.
func (a *API) UnexpiredProvisioningKeys(t time.Time) int {
	n := 0
	for _, k := range a.ProvisioningKeys() {
		if k.Expires.IsZero() || t.Before(k.Expires) {
			n++
		}
	}
	return n
}

// Requests is how many API requests the fake answered, all routes.
func (a *API) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		n += c
	}
	return n
}

// keysHook serves GET /_fake/provisioning-keys (no auth, no faults): each
// issued provisioning key's application and expiry (null: never), and
// whether it is still valid now.
func (a *API) keysHook(w http.ResponseWriter, _ *http.Request) {
	type row struct {
		AppID   int64   `json:"app_id"`
		Expires *string `json:"expires"`
		Valid   bool    `json:"valid"`
	}
	now := a.cfg.Now()
	rows := []row{}
	for _, k := range a.ProvisioningKeys() {
		r := row{AppID: k.AppID, Valid: k.Expires.IsZero() || now.Before(k.Expires)}
		if !k.Expires.IsZero() {
			s := k.Expires.UTC().Format(time.RFC3339)
			r.Expires = &s
		}
		rows = append(rows, r)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rows)
}

// callsHook serves GET /_fake/calls (no auth, no faults): the number of
// requests per route so far, for measuring round trips per unit.
func (a *API) callsHook(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	out := make(map[Route]int, len(a.calls))
	for r, n := range a.calls {
		out[r] = n
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// RevokeProvisioningKeys deletes every provisioning key, as an operator
// can in the dashboard; registrations with them then get 401.
func (a *API) RevokeProvisioningKeys() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.provKeys)
}
