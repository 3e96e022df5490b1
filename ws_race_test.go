//go:build race

package gaffer

// wsRaceEnabled: the race detector's instrumentation allocates, so the
// allocation tests are skipped under it.
const wsRaceEnabled = true
