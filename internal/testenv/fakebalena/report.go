package fakebalena

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// stateReport serves PATCH /device/v3/state, the supervisor's report of
// its device's state: authenticated by a device API key, the body keyed by
// UUID. Every UUID must be the key's own device; anything else is 401, as
// the real API refuses to patch a device the key cannot see. An accepted
// report brings the device online.
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
	for uuid, st := range body {
		var obj map[string]any
		if json.Unmarshal(st, &obj) != nil || obj == nil {
			http.Error(w, "Bad Request: the state of "+uuid+" is not an object", http.StatusBadRequest)
			return
		}
		if d := a.devices[uuid]; d == nil || d.ID != id {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	for uuid, st := range body {
		d := a.devices[uuid]
		d.ReportedAt = a.cfg.Now()
		d.LastState = string(st)
		d.Reports++
	}
	w.WriteHeader(http.StatusOK)
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

// ReportState does what a booted device's supervisor does: it reports the
// device's state to endpoint (config.json's apiEndpoint) as the device,
// authenticated by its deviceApiKey. Tests and simulations use it to bring
// a device online the way a real one comes online.
func ReportState(ctx context.Context, endpoint, uuid, deviceKey string) error {
	body, err := json.Marshal(map[string]any{uuid: map[string]any{"status": "Idle", "api_port": 48484}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "PATCH", strings.TrimRight(endpoint, "/")+"/device/v3/state", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+deviceKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("state report for %s: HTTP %d", uuid, resp.StatusCode)
	}
	return nil
}
