package ruleset

import (
	"errors"
	"fmt"
)

// NFAcctMatch is "-m nfacct --nfacct-name NAME": it always matches and counts the
// packet in the nfacct object NAME. kube-proxy v1.37 counts INVALID drops and
// localhost node-port packets this way. The ruleset does not know which objects
// exist; it checks the syntax only.
type NFAcctMatch struct {
	Name string
}

// Module implements Match.
func (*NFAcctMatch) Module() string { return "nfacct" }

// maxNFAcctNameLen is NFACCT_NAME_MAX (32) minus the terminating NUL.
const maxNFAcctNameLen = 31

type nfacctParser NFAcctMatch

func (m *nfacctParser) option(name string, negate bool, values []string) (int, bool, error) {
	if name != "--nfacct-name" {
		return 0, false, nil
	}
	if negate {
		return 0, true, errNoNegate
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	if len(val) > maxNFAcctNameLen {
		return 0, true, fmt.Errorf("nfacct name %q is longer than %d characters", val, maxNFAcctNameLen)
	}
	m.Name = val
	return 1, true, nil
}

func (m *nfacctParser) finish(*Rule) error {
	if m.Name == "" {
		return errors.New("nfacct match requires --nfacct-name")
	}
	return nil
}
