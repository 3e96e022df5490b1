// Package flagargs parses command lines whose options may come after
// positional arguments ("gaffer ps myapp --json", "gafferd gaffer.ini -v"),
// which the standard flag package, stopping at the first positional
// argument, does not allow.
package flagargs

import "flag"

// Parse parses the options of fs anywhere among args; "--" ends the
// options, and everything after it is positional. A lone "-" is a
// positional argument (stdin). After it returns, fs.Args() holds the
// positional arguments in their order.
func Parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at "--" (consumed) or at the first positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}
