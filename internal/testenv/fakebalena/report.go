package fakebalena

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// stateReport serves PATCH /device/v3/state, the supervisor's report of
// its device's state: authenticated by a device API key, the body keyed by
// UUID. Every UUID must be the key's own device; anything else is 401, as
// the real API refuses to patch a device the key cannot see. An accepted
// report is a heartbeat and records what the device says of itself.
func (a *API) stateReport(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.deviceKeys[bearer(r)]
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	var body map[string]json.RawMessage
	if !decodeJSON(w, data, err, &body, false) {
		return
	}
	if len(body) == 0 {
		http.Error(w, "Bad Request: no device state in the body", http.StatusBadRequest)
		return
	}
	states := map[string]reportedState{}
	for uuid, st := range body {
		var rs reportedState
		if json.Unmarshal(st, &rs) != nil || string(st) == "null" {
			http.Error(w, "Bad Request: the state of "+uuid+" is not an object", http.StatusBadRequest)
			return
		}
		if d := a.devices[uuid]; d == nil || d.ID != id {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		states[uuid] = rs
	}
	now := a.cfg.Now()
	for uuid, st := range body {
		d, rs := a.devices[uuid], states[uuid]
		d.ReportedAt, d.SeenAt = now, now
		d.LastState = string(st)
		d.Reports++
		for _, f := range []struct {
			v   *string
			dst *string
		}{{rs.OSVersion, &d.OSVersion}, {rs.SupervisorVersion, &d.SupervisorVersion}, {rs.Status, &d.Status}} {
			if f.v != nil {
				*f.dst = *f.v
			}
		}
		if rs.IsOnline != nil {
			d.VPN = *rs.IsOnline
		}
	}
	w.WriteHeader(http.StatusOK)
}

// reportedState is what the fake keeps of a state report.
type reportedState struct {
	OSVersion         *string `json:"os_version"`
	SupervisorVersion *string `json:"supervisor_version"`
	Status            *string `json:"status"`
	IsOnline          *bool   `json:"is_online"`
}

// stateGet serves GET /device/v3/<uuid>/state, the supervisor's poll for
// its target state, with the device's own key: a heartbeat. The target
// state is the device's name and no apps (the fake has no releases).
func (a *API) stateGet(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.deviceKeys[bearer(r)]
	d := a.devices[r.PathValue("uuid")]
	if !ok || d == nil || d.ID != id {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	d.SeenAt = a.cfg.Now()
	writeJSON(w, http.StatusOK, map[string]any{d.UUID: map[string]any{
		"name": d.Name, "config": map[string]any{}, "apps": map[string]any{}}})
}

// endpoint is the apiEndpoint config.json carries: the configured one, or
// the URL the request reached the fake at.
func (a *API) endpoint(r *http.Request) string {
	if a.cfg.APIEndpoint != "" {
		return a.cfg.APIEndpoint
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ReportState does what a booted device's supervisor does first: it
// fetches its target state and reports its state to endpoint (config.json's
// apiEndpoint) as the device, authenticated by its deviceApiKey. Tests and
// simulations use it to bring a device online the way a real one comes
// online.
func ReportState(ctx context.Context, endpoint, uuid, deviceKey string) error {
	return supervisor.FirstContact(ctx, nil, endpoint, uuid, deviceKey, supervisor.DefaultState)
}
