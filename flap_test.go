package gaffer

import (
	"testing"
	"time"
)

func TestFlapStateMachine(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(secondsToDuration(s)) }
	short := 100 * time.Millisecond
	type step struct {
		at     float64
		uptime time.Duration
		want   FlapVerdict
	}
	cases := []struct {
		name  string
		cfg   FlapConfig
		steps []step
	}{
		{"defaults: 2 quick crashes flap", DefaultFlapConfig(), []step{
			{0, short, FlapOK}, {0.1, short, FlapRetry},
		}},
		{"defaults give up after max_retry (5) retry cycles", DefaultFlapConfig(), []step{
			{0, short, FlapOK}, {0.1, short, FlapRetry},
			{7.2, short, FlapOK}, {7.3, short, FlapRetry},
			{14.4, short, FlapOK}, {14.5, short, FlapRetry},
			{21.6, short, FlapOK}, {21.7, short, FlapRetry},
			{28.8, short, FlapOK}, {28.9, short, FlapRetry},
			{36.0, short, FlapOK}, {36.1, short, FlapGiveUp},
			// history and retries are cleared after giving up
			{50, short, FlapOK}, {50.1, short, FlapRetry},
		}},
		{"crashes spread wider than window never flap", DefaultFlapConfig(), []step{
			{0, short, FlapOK}, {2, short, FlapOK}, {4, short, FlapOK}, {6, short, FlapOK},
		}},
		{"a process up longer than window resets the retry count", FlapConfig{Attempts: 2, Window: 1, RetryIn: 7, MaxRetry: 1}, []step{
			{0, short, FlapOK}, {0.1, short, FlapRetry},
			{8, 5 * time.Second, FlapOK}, {8.1, short, FlapRetry}, // not give up: retries reset by the long run
			{16, short, FlapOK}, {16.1, short, FlapGiveUp},
		}},
		{"max_retry 0 gives up at the first flap", FlapConfig{Attempts: 1, Window: 1, RetryIn: 0.1, MaxRetry: 0}, []step{
			{0, short, FlapGiveUp},
		}},
		{"attempts 3", FlapConfig{Attempts: 3, Window: 1, RetryIn: 1, MaxRetry: 2}, []step{
			{0, short, FlapOK}, {0.3, short, FlapOK}, {0.6, short, FlapRetry},
			{2, short, FlapOK}, {2.1, short, FlapOK}, {3.5, short, FlapOK}, {3.6, short, FlapOK}, {3.7, short, FlapRetry},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFlapState(c.cfg)
			for i, s := range c.steps {
				if got := f.exit(at(s.at), s.uptime); got != s.want {
					t.Fatalf("step %d (t=%v): got %v, want %v", i, s.at, got, s.want)
				}
			}
		})
	}
}

func TestParseFlapping(t *testing.T) {
	for in, want := range map[string]FlapConfig{
		"2, 1., 7., 5": {2, 1, 7, 5},
		"2 1 7 5":      {2, 1, 7, 5},
		"3":            {3, 1, 7, 5},
		"3, 0.5":       {3, 0.5, 7, 5},
	} {
		got, err := ParseFlapping(in)
		if err != nil || *got != want {
			t.Errorf("ParseFlapping(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "1.5", "1 2 3 4 5", "0", "2 nan"} {
		if _, err := ParseFlapping(bad); err == nil {
			t.Errorf("ParseFlapping(%q) accepted", bad)
		}
	}
}
