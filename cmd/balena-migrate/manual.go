package main

import "github.com/fleetmig/balena-migrate/internal/buildinfo"

// manual is the end of balena-migrate's man page: what its flags cannot say.
func manual() []buildinfo.Section {
	return []buildinfo.Section{
		{Title: "EXIT STATUS", Text: "When stage 1 fails, its last line on stdout names the failure class: [<time> balena-migrate] ERROR: failed (<class>): <message>.", Items: []buildinfo.Item{
			{Tag: "0", Text: "Success: stage 1's last line says so, and whether the system reboots or must be rebooted, and with which argument."},
			{Tag: "1", Text: "The migration failed; stage 1 put back everything it had changed. balena-migrate stage2 exits 1 when it refused to flash (the old system then boots on)."},
			{Tag: "2", Text: "A bad flag or balena-migrate.conf value (class config_error); the message names it."},
		}},
		{Title: "ENVIRONMENT", Items: []buildinfo.Item{
			{Tag: "NO_OS_CHECK", Text: "TRUE: run on an initramfs-tools based system that is not in the supported list, as --no-os-check does."},
		}},
		{Title: "FILES", Items: []buildinfo.Item{
			{Tag: "balena-migrate.conf", Text: "the settings, in the migration directory; NO_FLASH=TRUE (the default) makes stage 2 stop before flashing."},
			{Tag: "/etc/balena-migrate-stage2.conf", Text: "what stage 1 hands to stage 2 inside the initramfs."},
			{Tag: "balena-migrate-stage2.log", Text: "stage 2's log in the migration directory, when it stopped before flashing."},
		}},
		{Title: "EXAMPLES", Items: []buildinfo.Item{
			{Tag: "sudo ./balena-migrate --pretend", Text: "Every check of stage 1, the backup and the initramfs, without changing the boot setup: try a migration environment on one device."},
			{Tag: "sudo ./balena-migrate --reboot 10 --balena-cfg config.json", Text: "Stage 1 for real, as migdb-migrate runs it; reboots into stage 2 ten seconds after success."},
			{Tag: "balena-migrate extract --img balena.img.gz --grub grub.cfg --config balena-migrate.conf flasher.img.zip", Text: "Pull the balenaOS image and the grub files out of an x86 flasher image and point the config at them."},
		}},
		{Title: "SEE ALSO", Text: "migdb-add-unit(1), migdb-migrate(1), migdb-check-done(1); the README and docs/ in /usr/share/doc/balena-migrate."},
	}
}
