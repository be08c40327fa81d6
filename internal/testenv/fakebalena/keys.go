package fakebalena

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

type provisionKeyRequest struct {
	ActorType   string   `json:"actorType"`
	ActorTypeID int64    `json:"actorTypeId"`
	Roles       []string `json:"roles"`
	ExpiryDate  *string  `json:"expiryDate"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
}

// provisionKey serves POST /api-key/v2/: a provisioning key for an
// application, answered as a JSON string.
func (a *API) provisionKey(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var req provisionKeyRequest
	if a.authUser(w, r) == nil || !decodeJSON(w, data, err, &req, false) {
		return
	}
	if req.ActorType != "application" || !slices.Equal(req.Roles, []string{"provisioning-api-key"}) {
		http.Error(w, "Bad Request: only application provisioning keys are supported", http.StatusBadRequest)
		return
	}
	if a.appByID(req.ActorTypeID) == nil {
		http.Error(w, "Not Found: no such application", http.StatusNotFound)
		return
	}
	var expires time.Time
	if req.ExpiryDate != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiryDate)
		if err != nil || !t.After(a.cfg.Now()) {
			http.Error(w, "Bad Request: expiryDate must be a future ISO 8601 date", http.StatusBadRequest)
			return
		}
		expires = t
	}
	writeJSON(w, http.StatusOK, a.provisioningKeyLocked(req.ActorTypeID, expires))
}

type registerRequest struct {
	User        *int64 `json:"user"`
	Application *int64 `json:"application"`
	UUID        string `json:"uuid"`
	DeviceType  string `json:"device_type"`
	APIKey      string `json:"api_key"`
}

// register serves POST /device/register, authenticated by an unexpired
// provisioning key only: 201 {"id","uuid","api_key"}, 409 for a UUID that
// is already registered.
func (a *API) register(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	key, ok := a.provKeys[bearer(r)]
	if !ok || (!key.expires.IsZero() && !a.cfg.Now().Before(key.expires)) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	var req registerRequest
	if !decodeJSON(w, data, err, &req, false) {
		return
	}
	if msg := a.checkRegisterLocked(req, key); msg != "" {
		http.Error(w, "Bad Request: "+msg, http.StatusBadRequest)
		return
	}
	// Like the real server: any type balena knows joins any fleet (the
	// SDK, not the API, checks the architecture); an alias is stored as
	// the type it names.
	dt, ok := knownType(req.DeviceType)
	if !ok {
		writeJSON(w, http.StatusNotFound, "Unknown device type "+req.DeviceType)
		return
	}
	a.registers[req.UUID]++
	if _, dup := a.devices[req.UUID]; dup {
		http.Error(w, `"uuid" must be unique.`, http.StatusConflict)
		return
	}
	d := &Device{ID: a.id(), UUID: req.UUID, AppID: key.appID, DeviceType: dt.Slug,
		RegisteredAt: a.cfg.Now(), DeviceKeys: 1}
	if req.User != nil {
		d.UserID = *req.User
	}
	a.devices[d.UUID] = d
	apiKey := req.APIKey
	if apiKey == "" {
		apiKey = a.newKey()
	}
	a.deviceKeys[apiKey] = d.ID
	writeJSON(w, http.StatusCreated, map[string]any{"id": d.ID, "uuid": d.UUID, "api_key": apiKey})
}

// checkRegisterLocked returns why req is malformed for key, or "".
func (a *API) checkRegisterLocked(req registerRequest, key provKey) string {
	switch {
	case req.Application == nil:
		return "Application ID must be a valid integer"
	case *req.Application != key.appID:
		return "the provisioning key belongs to another application"
	case req.DeviceType == "":
		return "Device type must be specified"
	case req.UUID == "":
		return "UUID must be specified"
	case !uuidRE.MatchString(req.UUID):
		return "UUID must be 32 or 62 lowercase hex digits"
	}
	if req.User != nil {
		for _, u := range a.users {
			if u.ID == *req.User {
				return ""
			}
		}
		return "User ID does not exist"
	}
	return ""
}

type configRequest struct {
	AppID                 int64  `json:"appId"`
	Version               string `json:"version"`
	Network               string `json:"network"`
	AppUpdatePollInterval *int   `json:"appUpdatePollInterval"`
	DeviceType            string `json:"deviceType"`
	WifiSsid              string `json:"wifiSsid"`
	WifiKey               string `json:"wifiKey"`
	// The provisioning key the config carries as apiKey: its name and
	// expiry. Without an expiry it never expires.
	ProvisioningKeyName       string  `json:"provisioningKeyName"`
	ProvisioningKeyExpiryDate *string `json:"provisioningKeyExpiryDate"`
}

// downloadConfig serves POST /download-config: the application's
// config.json for a device type, holding a fresh provisioning key as apiKey
// (valid until provisioningKeyExpiryDate, or forever without one).
func (a *API) downloadConfig(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.authUser(w, r)
	var req configRequest
	if u == nil || !decodeJSON(w, data, err, &req, false) {
		return
	}
	app := a.appByID(req.AppID)
	switch {
	case app == nil:
		http.Error(w, "Not Found: no such application", http.StatusNotFound)
		return
	case req.Version == "":
		http.Error(w, "Bad Request: A version is required.", http.StatusBadRequest)
		return
	case oldOSVersion(req.Version):
		http.Error(w, "balenaOS versions <= 1.2.0 are no longer supported, please update", http.StatusBadRequest)
		return
	case req.Network != "ethernet" && req.Network != "wifi":
		http.Error(w, "Bad Request: network must be ethernet or wifi", http.StatusBadRequest)
		return
	}
	deviceType := app.DeviceType
	if req.DeviceType != "" {
		dt, ok := knownType(req.DeviceType)
		if !ok {
			writeJSON(w, http.StatusNotFound, "Unknown device type "+req.DeviceType)
			return
		}
		deviceType = dt.Slug
	}
	var expires time.Time
	if req.ProvisioningKeyExpiryDate != nil {
		t, err := time.Parse(time.RFC3339, *req.ProvisioningKeyExpiryDate)
		if err != nil || !t.After(a.cfg.Now()) {
			http.Error(w, "Bad Request: provisioningKeyExpiryDate must be a future ISO 8601 date", http.StatusBadRequest)
			return
		}
		expires = t
	}
	poll := 10
	if req.AppUpdatePollInterval != nil {
		poll = *req.AppUpdatePollInterval
	}
	cfg := map[string]any{
		"applicationId": app.ID, "deviceType": deviceType, "userId": u.ID, "username": u.Username,
		"appUpdatePollInterval": poll * 60 * 1000, "listenPort": 48484, "vpnPort": 443,
		"apiEndpoint": a.endpoint(r), "vpnEndpoint": "vpn.balena-cloud.com",
		"registryEndpoint": "registry2.balena-cloud.com", "deltaEndpoint": "https://delta.balena-cloud.com",
		"apiKey": a.provisioningKeyLocked(app.ID, expires),
	}
	if req.Network == "wifi" {
		cfg["wifiSsid"], cfg["wifiKey"] = req.WifiSsid, req.WifiKey
	}
	writeJSON(w, http.StatusOK, cfg)
}

// deviceKey serves POST /api-key/device/<id>/device-key: a new device API
// key as a JSON string.
func (a *API) deviceKey(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	var body map[string]any
	if a.authUser(w, r) == nil || !decodeJSON(w, data, err, &body, true) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	d := a.deviceByID(id)
	if err != nil || d == nil {
		http.Error(w, "Not Found: no device with this id", http.StatusNotFound)
		return
	}
	k := a.newKey()
	a.deviceKeys[k] = d.ID
	d.DeviceKeys++
	writeJSON(w, http.StatusOK, k)
}

// listHook serves GET /_fake/devices (no auth, no faults): every device
// with its online state, for scripts.
func (a *API) listHook(w http.ResponseWriter, _ *http.Request) {
	type row struct {
		ID      int64  `json:"id"`
		UUID    string `json:"uuid"`
		AppID   int64  `json:"app_id"`
		Online  bool   `json:"is_online"`
		Reports int    `json:"reports"`
	}
	rows := []row{}
	for _, d := range a.Devices() {
		rows = append(rows, row{ID: d.ID, UUID: d.UUID, AppID: d.AppID, Online: a.Online(d.UUID), Reports: d.Reports})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rows)
}
