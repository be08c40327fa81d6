// Package fake owns an in-memory balena API: the calls of SPEC §8 with the
// real API's paths, shapes, status codes and rules (bearer tokens, 401 on a
// bad one, provisioning keys valid only for /device/register and only until
// they expire, 201 on register, 409 on a duplicate UUID, {"d":[…]}
// envelopes). Devices come online a set time after they registered, or after
// something "booted" them. Faults (429, 5xx, latency) can be injected by rate
// or as a scripted sequence. Tests, the demo and benchmarks use it, served
// by httptest (Start) or on any listener (API.Handler).
package fake

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultOnlineDelay is the standalone runner's default --online-delay.
const DefaultOnlineDelay = 5 * time.Second

// Config shapes the fake's behaviour. The zero value: devices come online
// the moment they register, no faults, no latency.
type Config struct {
	// OnlineDelay is how long after registering (or after Boot, when
	// RequireBoot is set) a device comes online. Negative: never by itself.
	OnlineDelay time.Duration
	// RequireBoot keeps devices offline until Boot is called for them.
	RequireBoot bool
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
	RegisteredAt time.Time
	BootedAt     time.Time // zero until Boot
	ForcedOnline *bool     // set by SetOnline
	DeviceKeys   int       // device API keys issued for it
}

// Route names an endpoint for call counting.
type Route string

// The endpoints of SPEC §8.
const (
	RouteWhoami         Route = "GET /actor/v1/whoami"
	RouteApplication    Route = "GET /v7/application"
	RouteProvisionKey   Route = "POST /api-key/v2/"
	RouteRegister       Route = "POST /device/register"
	RouteDownloadConfig Route = "POST /download-config"
	RouteDeviceKey      Route = "POST /api-key/device/<id>/device-key"
	RouteDevice         Route = "GET /v7/device"
)

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
