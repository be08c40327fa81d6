// Package supervisor does against a balena API what balenaOS's supervisor
// does first when a flashed device boots: it fetches the device's target
// state (GET /device/v3/<uuid>/state) and reports its current state (PATCH
// /device/v3/state, the body keyed by the UUID), both with the device's
// own API key from config.json. Each of the two is a heartbeat: balena then
// shows the device online by heartbeat (api_heartbeat_state) for 1.5 times
// the poll interval, VPN or not. Tests, the demo's devices and the balenaOS
// stand-in of the e2e run use it, against the fake and the real server.
package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// State is what the device reports about itself.
type State struct {
	// OSVersion is e.g. "balenaOS 6.8.1": the OS of the image it runs.
	OSVersion string
	OSVariant string // "prod" or "dev"
	// SupervisorVersion is the supervisor's own version, e.g. "17.0.3".
	SupervisorVersion string
	Status            string // e.g. "Idle"
}

// DefaultState is what the stand-ins report unless told otherwise.
var DefaultState = State{OSVersion: "balenaOS 6.8.1", OSVariant: "prod", SupervisorVersion: "17.0.3", Status: "Idle"}

// Error is a request the API refused.
type Error struct {
	Op     string
	Status int
	Body   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// FirstContact makes the supervisor's first two requests for the device
// uuid at endpoint (config.json's apiEndpoint, or where the test reaches
// that API) with its device API key. hc nil means http.DefaultClient.
func FirstContact(ctx context.Context, hc *http.Client, endpoint, uuid, deviceKey string, st State) error {
	if err := GetState(ctx, hc, endpoint, uuid, deviceKey); err != nil {
		return err
	}
	return PatchState(ctx, hc, endpoint, uuid, deviceKey, st)
}

// GetState fetches the device's target state, as the supervisor does at
// every poll.
func GetState(ctx context.Context, hc *http.Client, endpoint, uuid, deviceKey string) error {
	_, err := do(ctx, hc, "GET", strings.TrimRight(endpoint, "/")+"/device/v3/"+uuid+"/state", deviceKey, nil)
	return err
}

// PatchState reports the device's current state.
func PatchState(ctx context.Context, hc *http.Client, endpoint, uuid, deviceKey string, st State) error {
	body := map[string]any{"api_port": 48484}
	for k, v := range map[string]string{"os_version": st.OSVersion, "os_variant": st.OSVariant,
		"supervisor_version": st.SupervisorVersion, "status": st.Status} {
		if v != "" {
			body[k] = v
		}
	}
	_, err := do(ctx, hc, "PATCH", strings.TrimRight(endpoint, "/")+"/device/v3/state", deviceKey, map[string]any{uuid: body})
	return err
}

func do(ctx context.Context, hc *http.Client, method, url, key string, body any) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, &Error{Op: method + " " + req.URL.Path, Status: resp.StatusCode, Body: strings.TrimSpace(string(data))}
	}
	return data, nil
}
