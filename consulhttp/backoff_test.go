package consulhttp

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{60, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(tt.attempt)
			if d < tt.min || d > tt.max {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Delay(%d) took a single value in 200 draws: no jitter", tt.attempt)
		}
	}
	if d := (Backoff{}).Delay(1); d < 125*time.Millisecond || d > 250*time.Millisecond {
		t.Errorf("default Delay(1) = %s, want within [125ms, 250ms]", d)
	}
}
