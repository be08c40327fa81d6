package stage1

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/efiboot"
	"github.com/fleetmig/balena-migrate/internal/devproto"
)

// A UEFI machine whose firmware enforces Secure Boot is refused in the
// pre-flight with its own class, before anything changes; one in Setup
// Mode (nothing enforced) or with Secure Boot off goes on. Whether it is on
// must be known: unreadable variables are refused too.
func TestSecureBootRefused(t *testing.T) {
	static := buildStatic(t)
	for _, tc := range []struct {
		name              string
		secureBoot, setup []byte // nil: no such variable
		want              string // "" passes
	}{
		{"on", []byte{1}, []byte{0}, "UEFI Secure Boot is on: balenaOS's images are not signed for the keys this firmware trusts"},
		{"off", []byte{0}, []byte{0}, ""},
		{"on in Setup Mode", []byte{1}, []byte{1}, ""},
		{"variables not readable", nil, nil, "cannot tell: the firmware's variables are not readable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, fixtures[5], static)
			d.cfg.NoSetup = true
			dir := d.path(efiboot.DefaultDir)
			for name, data := range map[string][]byte{"SecureBoot": tc.secureBoot, "SetupMode": tc.setup} {
				p := dir + "/" + name + "-" + efiboot.GlobalGUID
				os.Remove(p)
				if data != nil {
					d.write(efiboot.DefaultDir+"/"+name+"-"+efiboot.GlobalGUID, append([]byte{6, 0, 0, 0}, data...))
				}
			}
			before := d.tree(t)
			_, err := d.run()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSecureBoot) || ClassOf(err) != devproto.ClassSecureBoot || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (class %s), want class secure_boot and %q", err, ClassOf(err), tc.want)
			}
			if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
				t.Fatalf("a refused run changed the device: %v", diff)
			}
		})
	}
}
