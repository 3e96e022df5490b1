package gaffer

import (
	"strings"
	"testing"
)

// Any mountinfo and /proc/self/cgroup text gives cgroup directories under
// the mount points it names, never a panic.
func FuzzCgroupMounts(f *testing.F) {
	f.Add("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"+
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"+
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
		"4:memory:/process_api/x\n0::/\n")
	f.Add("29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
		"0::/system.slice/gafferd.service\n")
	f.Add("40 31 0:38 /sub /mnt/a\\040b rw - cgroup2 none rw\n", "0::/sub/x/../y\n")
	f.Fuzz(func(t *testing.T, mountinfo, procCgroup string) {
		mounts := parseCgroupMounts([]byte(mountinfo))
		h := probeCgHost(mounts, []byte(procCgroup))
		under := func(dir string) bool {
			for _, m := range mounts {
				if dir == m.point || strings.HasPrefix(dir, strings.TrimSuffix(m.point, "/")+"/") {
					return true
				}
			}
			return false
		}
		if h.v2 != "" && !under(h.v2) {
			t.Fatalf("v2 %q is under no mount of %q", h.v2, mountinfo)
		}
		for c, d := range h.v1 {
			if !under(d) {
				t.Fatalf("v1 %s %q is under no mount", c, d)
			}
		}
	})
}
