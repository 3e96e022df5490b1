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
// or reaps (oldest first) to reach it. It returns the new target.
func (m *Manager) Scale(full string, op ScaleOp) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.jobLocked(full)
	if err != nil {
		return 0, err
	}
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
	m.publish("update", "name", j.full)
	m.manageLocked(j)
	return t, nil
}
