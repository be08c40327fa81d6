package balena

// Heartbeat states (api_heartbeat_state). balena derives them from the
// supervisor's own requests made with the device's API key: online for 1.5
// times the poll interval after the last one, then timeout for a while,
// then offline; unknown before the first.
const (
	HeartbeatOnline  = "online"
	HeartbeatTimeout = "timeout"
	HeartbeatOffline = "offline"
	HeartbeatUnknown = "unknown"
)

// How a device is online (the unit's ONLINE_BY).
const (
	OnlineByVPN       = "vpn"
	OnlineByHeartbeat = "heartbeat"
)

// DeviceStatus is what balena says about a device's life and health.
type DeviceStatus struct {
	// ID is the device's id in balena (0 when the adapter cannot tell).
	ID int64
	// Heartbeat is api_heartbeat_state (Heartbeat*); "" when the adapter
	// cannot tell.
	Heartbeat string
	// VPN is is_online: the device's VPN connection is up.
	VPN bool
	// OSVersion is the OS the device reported, e.g. "balenaOS 6.8.1";
	// empty until it reports.
	OSVersion string
	// SupervisorVersion is the version of the supervisor that reported;
	// empty until it reports.
	SupervisorVersion string
	// DeviceType is the device type balena holds for the device.
	DeviceType string
}

// OnlineBy says how the device is online, as balena's dashboard counts
// it: OnlineByVPN when its VPN is up, else OnlineByHeartbeat when its
// supervisor reached the API within the heartbeat window (balena shows it
// online with reduced functionality), else "" (not online).
func (s DeviceStatus) OnlineBy() string {
	switch {
	case s.VPN:
		return OnlineByVPN
	case s.Heartbeat == HeartbeatOnline:
		return OnlineByHeartbeat
	}
	return ""
}

// Online says whether the device is online by either signal.
func (s DeviceStatus) Online() bool { return s.OnlineBy() != "" }

// ProgressState is how a device's dashboard entry names a phase of its
// migration (Cloud.SetProgress).
func ProgressState(phase string) string { return "balena-migrate: " + phase }
