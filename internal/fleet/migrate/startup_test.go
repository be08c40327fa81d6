package migrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
)

// TestImageTypes: the start-up check sees the device types the units'
// registrations would use, chosen the same way.
func TestImageTypes(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // path under the environment → content; "BIN" is a balena-migrate binary
		want  string            // "<slug> <env relative> <from>" lines, sorted as listed
	}{
		{"no conf", map[string]string{"balena-migrate": "BIN"}, ""},
		{"image names a type", map[string]string{"balena-migrate": "BIN",
			"balena-migrate.conf": "IMAGE_NAME=resin-genericx86-64.img.gz\nNO_FLASH=FALSE\n"},
			"genericx86-64 . IMAGE_NAME resin-genericx86-64.img.gz"},
		{"image names none: the fleet's type", map[string]string{"balena-migrate": "BIN",
			"balena-migrate.conf": "IMAGE_NAME=balena.img.gz\nNO_FLASH=FALSE\n"}, ""},
		{"per-type and per-architecture sub-directories", map[string]string{
			"raspberrypi3/balena-migrate":      "BIN",
			"raspberrypi3/balena-migrate.conf": "IMAGE_NAME=balena-raspberrypi4-64.img.gz\nNO_FLASH=FALSE\n", // the directory wins, as at registration
			"aarch64/balena-migrate":           "BIN",
			"aarch64/balena-migrate.conf":      "IMAGE_NAME=balena-cloud-raspberrypi4-64-6.8.1.img.gz\nNO_FLASH=FALSE\n",
			"notes/readme":                     "not an environment",
		}, "raspberrypi4-64 aarch64 IMAGE_NAME balena-cloud-raspberrypi4-64-6.8.1.img.gz\nraspberrypi3 raspberrypi3 its sub-directory name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, content := range tt.files {
				mode := os.FileMode(0o644)
				if content == "BIN" {
					content, mode = "#!/bin/sh\n", 0o755
				}
				write(t, filepath.Join(root, p), content, mode)
			}
			s, err := config.Resolve(config.Migrate, config.Layer{Source: "test", Values: map[string]string{
				config.App: "org/fleet", config.BalenaVer: "2.113.0", config.CfgDir: root}})
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckEnvironment(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			types, err := ImageTypes(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range types {
				rel, _ := filepath.Rel(root, it.Env)
				got = append(got, fmt.Sprintf("%s %s %s", it.Slug, rel, it.From))
			}
			if strings.Join(got, "\n") != tt.want {
				t.Errorf("ImageTypes:\n%s\nwant\n%s", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}
