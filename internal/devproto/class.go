package devproto

// Class is a FAIL_CLASS word: why a unit failed. The device names some of
// them on its failure line (stage 1, fetch); the fleet workers decide the
// others. Both take them from this one list, so a word the device prints
// is a word the fleet records.
type Class string

// Classes the device names on its failure line.
const (
	ClassConfigError   Class = "config_error"   // a bad flag, setting or config file (a usage error; the fleet uses it too)
	ClassNoSpace       Class = "no_space"       // ENOSPC, or too little space or memory found by a check
	ClassReadOnly      Class = "read_only"      // EROFS
	ClassAlreadyBalena Class = "already_balena" // the device runs balenaOS already
	ClassOS            Class = "os"             // an OS release balena-migrate does not support
	ClassDeviceType    Class = "device_type"    // an unsupported board, or an image for another one (the fleet uses it too)
	ClassBackup        Class = "backup"         // the backup step (BACKUP_SCRIPT / BACKUP_DIRECTORIES)
	ClassNetwork       Class = "network"        // the device would not be reached on balenaOS: a setup that cannot be carried, a link that would not come up, an API it cannot reach
	ClassSecureBoot    Class = "secure_boot"    // UEFI Secure Boot is on: balenaOS's images are not signed for it
	ClassStage1        Class = "stage1"         // anything else in stage 1; also a stage 1 that said nothing
	ClassTransfer      Class = "transfer"       // a copy or download to the device failed (the fleet uses it too)
)

// Classes the fleet workers decide.
const (
	ClassDNS         Class = "dns"         // the device's name does not resolve
	ClassRefused     Class = "refused"     // nothing listens on its SSH port
	ClassUnreachable Class = "unreachable" // no route to it
	ClassAuth        Class = "auth"        // the login was refused
	ClassHostKey     Class = "host_key"    // its host key is not the one recorded
	ClassTimeout     Class = "timeout"     // it did not answer in time
	ClassRegister    Class = "register"    // registering it in balena failed
	ClassConfig      Class = "config"      // writing its config.json failed
	ClassStage2      Class = "stage2"      // stage 2 refused to flash and the old system came back
	ClassRehearsal   Class = "rehearsal"   // a rehearsal (NO_FLASH) found a problem
	ClassLost        Class = "lost"        // not online in balena in time, and no refusal seen
	ClassAPI         Class = "api"         // balena refused or lost the device
	// ClassFlashedOffline: not online in balena in time, but balenaOS
	// answers on its host SSH (its network, DNS or clock keeps it away).
	ClassFlashedOffline Class = "flashed_offline"
	// A device online in balena but not healthy by --max-age:
	ClassWrongOS         Class = "wrong_os"          // it reports another OS version than the image's
	ClassNoSupervisor    Class = "no_supervisor"     // it reports no supervisor version
	ClassWrongDeviceType Class = "wrong_device_type" // balena holds another type than it was registered as
	ClassOther           Class = "other"
	// ClassUnknown records a class word the device named that this version
	// does not know (a newer balena-migrate); the message keeps the word.
	ClassUnknown Class = "unknown"
)

// Classes lists every class, for summaries and validation.
func Classes() []Class {
	return []Class{
		ClassDNS, ClassRefused, ClassUnreachable, ClassAuth, ClassHostKey, ClassTimeout, ClassTransfer,
		ClassRegister, ClassConfig, ClassStage1, ClassNoSpace, ClassReadOnly, ClassBackup,
		ClassOS, ClassDeviceType, ClassAlreadyBalena, ClassNetwork, ClassSecureBoot, ClassStage2, ClassRehearsal, ClassLost, ClassFlashedOffline,
		ClassAPI, ClassWrongOS, ClassNoSupervisor, ClassWrongDeviceType, ClassConfigError, ClassOther, ClassUnknown,
	}
}

// ParseClass is the class a word names; ok is false for a word that is not
// in the list.
func ParseClass(word string) (c Class, ok bool) {
	for _, c := range Classes() {
		if string(c) == word {
			return c, true
		}
	}
	return ClassUnknown, false
}
