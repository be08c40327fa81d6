package openbalena

import (
	"context"
	"testing"
)

func TestStartServesFleetsAndStops(t *testing.T) {
	Need(t)
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	t.Logf("open-balena-api started in %v", s.StartTime)
	id, slug, err := s.NewFleet(ctx, "startup", "raspberrypi4-64")
	if err != nil || id == 0 || slug != "admin/startup" {
		t.Fatalf("NewFleet = %d %q %v", id, slug, err)
	}
	s.Stop()
	if err := s.call(ctx, "", "GET", "/ping", nil, nil); err == nil {
		t.Fatal("the server still answers after Stop")
	}
}
