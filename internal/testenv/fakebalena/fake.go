// Package fakebalena owns an in-memory balena API: the calls of docs/balena.md with the
// real API's paths, shapes, status codes and rules (bearer tokens, 401 on a
// bad one, provisioning keys valid only for /device/register and only until
// they expire, 201 on register, 409 on a duplicate UUID, {"d":[…]}
// envelopes). Online follows balena's two signals: api_heartbeat_state is
// online for 1.5 times the supervisor poll interval after the device's own
// GET /device/v3/<uuid>/state or PATCH /device/v3/state (made with its own
// device API key, as the supervisor of a booted balenaOS does), then timeout,
// then offline; is_online is the VPN's flag, set only by a VPN connect
// (SetVPN) or a state PATCH that says so. So "online" proves the device runs
// with the config.json it was given. Faults (429, 5xx, latency) can be injected by
// rate or as a scripted sequence. Tests, the demo and benchmarks use it, served
// by httptest (Start) or on any listener (API.Handler).
package fakebalena

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Config shapes the fake's behaviour. The zero value: no faults, no
// latency, config.json pointing devices at the URL they were fetched from.
type Config struct {
	// APIEndpoint is the apiEndpoint written into config.json: the URL a
	// booted device reports to. Empty: the URL of the /download-config
	// request (right when devices reach the fake as the workers do).
	APIEndpoint string
	// FaultRate is the fraction (0..1) of API requests answered with
	// FaultStatus instead of being served.
	FaultRate float64
	// FaultStatus is the status of rate faults; default 503.
	FaultStatus int
	// RetryAfter is the Retry-After (seconds) sent with a 429; default 1,
	// negative sends none.
	RetryAfter int
	// Latency is added to every API request.
	Latency time.Duration
	// PollInterval is the supervisor poll interval balena assumes; a device
	// is online by heartbeat for 1.5 times it. Default 10 minutes.
	PollInterval time.Duration
	// HeartbeatTimeout is how long a device is "timeout" before
	// "offline". Default 15 s.
	HeartbeatTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log gets one debug line per API request (method, path, status,
	// duration; never headers). The zero value logs nothing.
	Log zerolog.Logger
}

// User is an account the fake knows, with the token that authenticates it.
type User struct {
	ID       int64
	Username string
	Email    string
	Token    string
}

// App is an application (fleet).
type App struct {
	ID         int64
	Slug       string // "org/name", lower case
	Name       string // app_name
	DeviceType string // slug of is_for__device_type
}

// Device is a registered device as the fake sees it.
type Device struct {
	ID           int64
	UUID         string
	AppID        int64
	UserID       int64
	DeviceType   string
	Name         string            // device_name; empty until set
	Tags         map[string]string // device tags by key
	RegisteredAt time.Time
	ReportedAt   time.Time // last accepted state report; zero: never reported
	LastState    string    // the JSON the device last reported for itself
	Reports      int       // accepted state reports
	// SeenAt is the device's last heartbeat: its last state GET or PATCH.
	SeenAt time.Time
	// VPN is is_online: set by SetVPN or a state PATCH saying is_online.
	VPN bool
	// What the device reported about itself.
	OSVersion, SupervisorVersion, Status string
	// Set by the operator's key (the dashboard's progress bar).
	ProvisioningState    string
	ProvisioningProgress *int
	ForcedOnline         *bool // set by SetOnline
	DeviceKeys           int   // device API keys issued for it
}

// Route names an endpoint for call counting.
type Route string

// The endpoints of docs/balena.md.
const (
	RouteWhoami         Route = "GET /actor/v1/whoami"
	RouteApplication    Route = "GET /v7/application"
	RouteProvisionKey   Route = "POST /api-key/v2/"
	RouteRegister       Route = "POST /device/register"
	RouteDownloadConfig Route = "POST /download-config"
	RouteDeviceKey      Route = "POST /api-key/device/<id>/device-key"
	RouteDevice         Route = "GET /v7/device"
	RouteStateReport    Route = "PATCH /device/v3/state"
	RouteStateGet       Route = "GET /device/v3/<uuid>/state"
	RouteRelease        Route = "GET /v7/release"
	RouteDevicePatch    Route = "PATCH /v7/device(<id>)"
	RouteDeviceTag      Route = "POST /v7/device_tag"
	RouteTagPatch       Route = "PATCH /v7/device_tag"
	// RouteDeviceFilterPatch is a PATCH of the device by UUID (the
	// dashboard's progress).
	RouteDeviceFilterPatch Route = "PATCH /v7/device"
	RouteDeviceType        Route = "GET /v7/device_type"
)

// Routes lists every endpoint, for totals.
var Routes = []Route{RouteWhoami, RouteApplication, RouteProvisionKey, RouteRegister, RouteDownloadConfig,
	RouteDeviceKey, RouteDevice, RouteStateReport, RouteStateGet, RouteRelease, RouteDevicePatch, RouteDeviceTag, RouteTagPatch, RouteDeviceFilterPatch, RouteDeviceType}

type provKey struct {
	appID   int64
	expires time.Time // zero: never
}

// API is the fake's state and HTTP handler. All methods are safe for
// concurrent use.
type API struct {
	mu         sync.Mutex
	cfg        Config
	nextID     int64
	users      []*User
	apps       []*App
	devices    map[string]*Device
	provKeys   map[string]provKey
	deviceKeys map[string]int64 // key -> device id
	script     []int            // statuses to answer the next requests with
	calls      map[Route]int
	registers  map[string]int // register calls per UUID
	faults     int
	osReleases map[string][]string // balenaOS versions by device type, newest first
	images     map[string][]byte   // served at /_fake/images/<name>
	imageBytes int64
	mux        *http.ServeMux
}

// New returns a fake with no users, applications or devices.
func New(cfg Config) *API {
	if cfg.FaultStatus == 0 {
		cfg.FaultStatus = http.StatusServiceUnavailable
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 1
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Minute
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{
		cfg:        cfg,
		nextID:     1000,
		devices:    map[string]*Device{},
		provKeys:   map[string]provKey{},
		deviceKeys: map[string]int64{},
		calls:      map[Route]int{},
		registers:  map[string]int{},
		osReleases: map[string][]string{},
	}
	a.mux = a.routes()
	return a
}

// Server is a fake served over real HTTP on a loopback port.
type Server struct {
	*API
	hs *httptest.Server
}

// Start serves a new fake on 127.0.0.1 until Close.
func Start(cfg Config) *Server {
	a := New(cfg)
	return &Server{API: a, hs: httptest.NewServer(a.Handler())}
}

// URL is the base URL of the API, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.hs.URL }

// Close stops the server.
func (s *Server) Close() { s.hs.Close() }

func (a *API) id() int64 {
	a.nextID++
	return a.nextID
}
