package fakebalena

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const appExpand = "is_for__device_type($select=slug)"

var (
	appFields    = []string{"id", "slug", "app_name"}
	deviceFields = []string{"id", "uuid", "device_name", "is_online", "api_heartbeat_state", "os_version",
		"supervisor_version", "status", "provisioning_state", "provisioning_progress", "last_connectivity_event",
		"belongs_to__application"}
	deviceExpands = []string{"is_of__device_type($select=slug)"}
	byIDRE        = regexp.MustCompile(`^application\(([0-9]+)\)$`)
	deviceIDRE    = regexp.MustCompile(`^device\(([0-9]+)\)$`)
	uuidRE        = regexp.MustCompile(`^[0-9a-f]{32}([0-9a-f]{30})?$`)
)

// Handler serves the fake API.
func (a *API) Handler() http.Handler { return a.mux }

func (a *API) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /actor/v1/whoami", a.admit(RouteWhoami, a.whoami))
	m.HandleFunc("GET /v7/{resource}", a.resource)
	m.HandleFunc("PATCH /v7/{resource}", a.patchResource)
	m.HandleFunc("POST /v7/device_tag", a.admit(RouteDeviceTag, a.addTag))
	m.HandleFunc("POST /api-key/v2/{$}", a.admit(RouteProvisionKey, a.provisionKey))
	m.HandleFunc("POST /device/register", a.admit(RouteRegister, a.register))
	m.HandleFunc("POST /download-config", a.admit(RouteDownloadConfig, a.downloadConfig))
	m.HandleFunc("POST /api-key/device/{id}/device-key", a.admit(RouteDeviceKey, a.deviceKey))
	m.HandleFunc("PATCH /device/v3/state", a.admit(RouteStateReport, a.stateReport))
	m.HandleFunc("GET /device/v3/{uuid}/state", a.admit(RouteStateGet, a.stateGet))
	m.HandleFunc("GET /_fake/devices", a.listHook)
	m.HandleFunc("GET /_fake/provisioning-keys", a.keysHook)
	m.HandleFunc("GET /_fake/calls", a.callsHook)
	m.HandleFunc("GET /_fake/images/{name}", a.image)
	return m
}

// admit counts the call, adds latency and answers injected faults; h runs
// only when no fault was injected.
func (a *API) admit(route Route, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.calls[route]++
		latency := a.cfg.Latency
		status := 0
		switch {
		case len(a.script) > 0:
			status, a.script = a.script[0], a.script[1:]
		case a.cfg.FaultRate > 0 && rand.Float64() < a.cfg.FaultRate:
			status = a.cfg.FaultStatus
		}
		if status != 0 {
			a.faults++
		}
		retryAfter := a.cfg.RetryAfter
		a.mu.Unlock()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			a.cfg.Log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
				Bool("injected", status != 0).Dur("took", time.Since(start)).Msg("fake balena request")
		}()
		if status != 0 {
			if status == http.StatusTooManyRequests && retryAfter > 0 {
				rec.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			}
			http.Error(rec, http.StatusText(status), status)
			return
		}
		h(rec, r)
	}
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authUser returns the user the request's token belongs to, or answers
// 401 and returns nil. Call with a.mu held.
func (a *API) authUser(w http.ResponseWriter, r *http.Request) *User {
	u := a.userByToken(bearer(r))
	if u == nil {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}
	return u
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads a request body of at most 1 MiB. Like the real API
// (whose body parser only reads JSON), a non-empty body must be sent as
// application/json.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	ct := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0])
	if err == nil && len(bytes.TrimSpace(data)) > 0 && !strings.EqualFold(ct, "application/json") {
		err = errors.New("the body must be sent as Content-Type: application/json")
	}
	return data, err
}

// decodeJSON reads the JSON object data (read with readBody; readErr is
// readBody's error) into v; an empty body is allowed when emptyOK. It
// answers 400 itself and returns false on failure.
func decodeJSON(w http.ResponseWriter, data []byte, readErr error, v any, emptyOK bool) bool {
	if readErr == nil && emptyOK && len(bytes.TrimSpace(data)) == 0 {
		return true
	}
	err := readErr
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.authUser(w, r)
	if u == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": u.ID, "actorType": "user", "actorTypeId": u.ID,
		"username": u.Username, "email": u.Email,
	})
}

// patchResource serves PATCH /v7/device(<id>), /v7/device?$filter=… and
// /v7/device_tag.
func (a *API) patchResource(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("resource") {
	case "device_tag":
		a.admit(RouteTagPatch, a.patchTag)(w, r)
		return
	case "device":
		a.admit(RouteDeviceFilterPatch, a.patchDevice)(w, r)
		return
	}
	a.admit(RouteDevicePatch, a.patchDevice)(w, r)
}

// resource serves GET /v7/application, /v7/application(<id>), /v7/device.
func (a *API) resource(w http.ResponseWriter, r *http.Request) {
	res := r.PathValue("resource")
	switch {
	case res == "application" || byIDRE.MatchString(res):
		a.admit(RouteApplication, a.application)(w, r)
	case res == "device":
		a.admit(RouteDevice, a.device)(w, r)
	case res == "release":
		a.admit(RouteRelease, a.releases)(w, r)
	case res == "device_type":
		a.admit(RouteDeviceType, a.deviceTypes)(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (a *API) application(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Like the real API, applications are readable without a valid token
	// (public fleets): an unknown token sees none, and no 401.
	if a.userByToken(bearer(r)) == nil {
		writeJSON(w, http.StatusOK, map[string]any{"d": []any{}})
		return
	}
	q, err := parseQuery(r.URL.RawQuery, appFields, []string{"slug", "app_name"}, []string{appExpand})
	if err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var found []*App
	if m := byIDRE.FindStringSubmatch(r.PathValue("resource")); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		app := a.appByID(id)
		if app == nil || q.filterField != "" {
			http.NotFound(w, r)
			return
		}
		found = append(found, app)
	} else {
		for _, app := range a.apps {
			if (q.filterField == "slug" && app.Slug != q.filterValue) ||
				(q.filterField == "app_name" && app.Name != q.filterValue) {
				continue
			}
			found = append(found, app)
		}
	}
	rows := make([]map[string]any, 0, len(found))
	for _, app := range found {
		row := q.row(map[string]any{"id": app.ID, "slug": app.Slug, "app_name": app.Name})
		if q.expand != "" {
			row["is_for__device_type"] = []map[string]any{{"slug": app.DeviceType}}
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"d": rows})
}

func (a *API) device(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.authUser(w, r) == nil {
		return
	}
	q, err := parseQuery(r.URL.RawQuery, deviceFields, []string{"uuid"}, deviceExpands)
	if err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	rows := []map[string]any{}
	devices := a.sortedLocked()
	if q.filterField == "uuid" {
		devices = nil
		if d := a.devices[q.filterValue]; d != nil {
			devices = []*Device{d}
		}
	}
	for _, d := range devices {
		var last any
		if !d.SeenAt.IsZero() {
			last = d.SeenAt.UTC().Format(time.RFC3339)
		}
		row := q.row(map[string]any{
			"id": d.ID, "uuid": d.UUID, "device_name": d.Name, "is_online": a.vpnLocked(d),
			"api_heartbeat_state": a.heartbeatLocked(d), "os_version": nullable(d.OSVersion),
			"supervisor_version": nullable(d.SupervisorVersion), "status": nullable(d.Status),
			"provisioning_state": d.ProvisioningState, "provisioning_progress": d.ProvisioningProgress,
			"last_connectivity_event": last, "belongs_to__application": map[string]any{"__id": d.AppID},
		})
		if q.expand != "" {
			row["is_of__device_type"] = []map[string]any{{"slug": d.DeviceType}}
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"d": rows})
}

// nullable is null for "", as the real API answers unset text fields.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
