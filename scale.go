package gaffer

// ScaleOp is a parsed scale request: Set, or Delta added to the target.
type ScaleOp struct {
	Set   bool
	Value int
}

// ParseScale parses a scale value (reference §6.4): an int N adds N (0 or
// negative subtracts), a string of digits adds, "+k" adds, "-k"
// subtracts, "=k" sets.
func ParseScale(v any) (ScaleOp, error) {
	bad := func() (ScaleOp, error) {
		return ScaleOp{}, Errorf(CodeBadOperation, 400, "scale: invalid value %v (use N, \"+N\", \"-N\" or \"=N\")", v)
	}
	switch x := v.(type) {
	case int:
		return ScaleOp{Value: x}, nil
	case float64:
		if x != float64(int(x)) {
			return bad()
		}
		return ScaleOp{Value: int(x)}, nil
	case string:
		return parseScaleString(x, bad)
	default:
		if n, ok := v.(interface{ Int64() (int64, error) }); ok {
			i, err := n.Int64()
			if err != nil || i > 1<<30 || i < -(1<<30) {
				return bad()
			}
			return ScaleOp{Value: int(i)}, nil
		}
	}
	return bad()
}

func parseScaleString(s string, bad func() (ScaleOp, error)) (ScaleOp, error) {
	if s == "" {
		return bad()
	}
	op := byte('+')
	num := s
	if c := s[0]; c == '+' || c == '-' || c == '=' {
		op, num = c, s[1:]
	}
	if num == "" || len(num) > 9 {
		return bad()
	}
	n := 0
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return bad()
		}
		n = n*10 + int(num[i]-'0')
	}
	switch op {
	case '=':
		return ScaleOp{Set: true, Value: n}, nil
	case '-':
		return ScaleOp{Value: -n}, nil
	}
	return ScaleOp{Value: n}, nil
}

// Scale changes the job's target (clamped at 0) and, when it runs, spawns
// or reaps (oldest first) to reach it; it returns once the processes it
// asked for are spawned (the manager is not locked meanwhile). A job
// loaded without being started and with no process to start (a template
// for commits, numprocesses 0) starts when a scale gives it processes, as
// the 0.5.2 client expects; one that holds processes back keeps waiting
// for its start, and so does a stopped job, with its new target. It
// returns the new target.
func (m *Manager) Scale(full string, op ScaleOp) (int, error) {
	m.mu.Lock()
	j, err := m.jobLocked(full)
	if err != nil {
		m.mu.Unlock()
		return 0, err
	}
	before := j.target
	t, err := m.setTargetLocked(j, op)
	if err != nil {
		m.mu.Unlock()
		return 0, err
	}
	var batch spawnBatch
	if j.state == JobNotStarted && before == 0 && t > 0 {
		batch = m.startLocked(j)
	} else {
		batch = m.manageLocked(j)
	}
	m.mu.Unlock()
	batch.wait() // a failed spawn is retried and reported in the job's info
	return t, nil
}

func (m *Manager) setTargetLocked(j *job, op ScaleOp) (int, error) {
	t := j.target + op.Value
	if op.Set {
		t = op.Value
	}
	if t < 0 {
		t = 0
	}
	if err := m.opts.limits().checkProcesses("scale", t); err != nil {
		return 0, err
	}
	j.target = t
	m.emit("update", j, nil, "name", j.full)
	return t, nil
}

// setTarget changes a job's target without spawning or starting anything
// (gafferd restoring its state before it starts the jobs that ran).
func (m *Manager) setTarget(full string, n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return err
	}
	_, err = m.setTargetLocked(j, ScaleOp{Set: true, Value: n})
	return err
}
