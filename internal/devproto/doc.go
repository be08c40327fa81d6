// Package devproto is the contract between balena-migrate on the device
// and the fleet workers that run it over SSH, in one place that both sides
// format and parse through: the names in the migration directory, the log
// line, stage 1's success and failure lines, the failure classes, what
// stage 2 leaves behind when it stops before flashing, and how
// balena-migrate.conf is read. Neither side spells the other's words; a
// change here changes both, and the round-trip tests say whether they
// still agree. docs/device-protocol.md describes it for people.
//
// It is shared code: it imports neither the device nor the fleet side.
package devproto

// The migration directory on the device.
const (
	// Dir is where migdb-migrate copies the environment, relative to the
	// login directory. balena-migrate runs there, so it is stage 1's
	// HOME_DIR, and stage 2 leaves its log there.
	Dir = "migrate"
	// ConfName is balena-migrate's settings file in the environment.
	ConfName = "balena-migrate.conf"
	// BalenaConfigName is the config.json migdb-migrate writes into Dir
	// for the device it registered (stage 1's --balena-cfg).
	BalenaConfigName = "balena-migrate-config.json"
	// Stage2LogName is the log stage 2 leaves in HOME_DIR on the old
	// system when it stops before flashing (a refusal, or NO_FLASH); it
	// ends with stage 2's verdict.
	Stage2LogName = "balena-migrate-stage2.log"
	// Stage2LogPath is where the fleet finds that log, relative to the
	// login directory.
	Stage2LogPath = Dir + "/" + Stage2LogName
	// EndpointsName is the file the fleet's pre-flight leaves in Dir with
	// where the fleet's devices will talk to (the endpoint keys of the
	// fleet's config.json, no key): stage 1 probes them before the device
	// has a config.json.
	EndpointsName = "balena-migrate-endpoints.json"
)
