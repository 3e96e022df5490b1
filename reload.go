package gaffer

// What a reload changes: the jobs of the configuration read again,
// compared with those loaded before (JobConfig.Equal).

import "encoding/json"

// ReloadDiff is what a reload changes: full job names ("session.job").
// Added, Changed and Unchanged follow the new configuration's order,
// Removed the old one's.
type ReloadDiff struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// MarshalJSON writes empty lists as [], never null.
func (d ReloadDiff) MarshalJSON() ([]byte, error) {
	type plain ReloadDiff
	return json.Marshal(plain{Added: nonNil(d.Added), Removed: nonNil(d.Removed), Changed: nonNil(d.Changed), Unchanged: nonNil(d.Unchanged)})
}

// DiffJobs compares the jobs of two configurations with JobConfig.Equal.
// A name present twice in one list counts once, at its first place.
func DiffJobs(old, new []SessionJob) ReloadDiff {
	d := ReloadDiff{Added: []string{}, Removed: []string{}, Changed: []string{}, Unchanged: []string{}}
	before := make(map[string]JobConfig, len(old))
	for _, j := range old {
		if _, dup := before[j.FullName()]; !dup {
			before[j.FullName()] = j.Config
		}
	}
	after := make(map[string]bool, len(new))
	for _, j := range new {
		name := j.FullName()
		if after[name] {
			continue
		}
		after[name] = true
		switch prev, ok := before[name]; {
		case !ok:
			d.Added = append(d.Added, name)
		case prev.Equal(j.Config):
			d.Unchanged = append(d.Unchanged, name)
		default:
			d.Changed = append(d.Changed, name)
		}
	}
	gone := map[string]bool{}
	for _, j := range old {
		if name := j.FullName(); !after[name] && !gone[name] {
			gone[name] = true
			d.Removed = append(d.Removed, name)
		}
	}
	return d
}
