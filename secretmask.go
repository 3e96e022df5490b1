package gaffer

import "strings"

// secretMask replaces a secret in what callers without manage rights see.
const secretMask = "********"

// maskedArgv returns argv, a process's command and arguments as run (after
// $VAR expansion with env), with what secret-looking variables (IsSecretName)
// expanded to replaced by secretMask: "--token=$API_TOKEN" shows as
// "--token=********". cfg is the job's config, whose words are expanded
// again with the secrets masked when they still give argv exactly; when
// they do not (the job was updated since the spawn, or cfg is nil), every
// argument containing the value of a secret variable is masked whole.
func maskedArgv(cfg *JobConfig, env map[string]string, argv []string) []string {
	if out, ok := maskedFromConfig(cfg, env, argv); ok {
		return out
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = a
		for k, v := range env {
			if v != "" && IsSecretName(k) && strings.Contains(a, v) {
				out[i] = secretMask
				break
			}
		}
	}
	return out
}

// maskedFromConfig expands cfg's words with the secrets masked, if the
// same words expanded with env give argv.
func maskedFromConfig(cfg *JobConfig, env map[string]string, argv []string) ([]string, bool) {
	if cfg == nil {
		return nil, false
	}
	if cfg.Shell {
		// A shell command line is passed as written (sh -c LINE): the
		// shell expands it, so argv holds no expansion.
		if len(argv) == 3 && argv[0] == "sh" && argv[1] == "-c" {
			return append([]string(nil), argv...), true
		}
		return nil, false
	}
	words, err := SplitCommandLine(cfg.Cmd)
	if err != nil {
		return nil, false
	}
	words = append(words, cfg.Args...)
	if len(words) != len(argv) {
		return nil, false
	}
	real := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	masked := func(k string) (string, bool) {
		v, ok := env[k]
		if ok && IsSecretName(k) {
			v = secretMask
		}
		return v, ok
	}
	out := make([]string, len(words))
	for i, w := range words {
		if v, err := ExpandVars(w, real); err != nil || v != argv[i] {
			return nil, false
		}
		out[i], _ = ExpandVars(w, masked)
	}
	return out, true
}
