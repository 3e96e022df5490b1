//go:build !linux

package gaffer

// SetSubreaper is a no-op outside Linux, where the flag does not exist;
// it still turns on SetReapAll.
func SetSubreaper() error {
	SetReapAll(true)
	return nil
}

func ownChildren() []int { return nil }

func allPids() []int { return nil }

func environValue(pid int, name string) (string, bool) { return "", false }

func ppidOf(pid int) int { return -1 }

const peekSupported = false

// peekZombie is not available here: the reaper tries each registered pid.
func peekZombie() (int, bool) { return 0, false }

func isZombie(pid int) bool { return false }
