package contractstest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// UsersPermissions renders the users of a parsed nats-server configuration,
// one line each, sorted: name@account and the publish, subscribe and
// response permissions ("all" for a user without permissions). Two
// configurations grant their users the same iff their renderings are equal.
func UsersPermissions(o *server.Options) string {
	var out []string
	for _, u := range o.Users {
		acc := ""
		if u.Account != nil {
			acc = u.Account.Name
		}
		p := u.Permissions
		if p == nil {
			out = append(out, u.Username+"@"+acc+": all")
			continue
		}
		out = append(out, fmt.Sprintf("%s@%s: %+v / %+v / %+v", u.Username, acc, deref(p.Publish), deref(p.Subscribe), p.Response))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func deref(p *server.SubjectPermission) server.SubjectPermission {
	if p == nil {
		return server.SubjectPermission{}
	}
	return *p
}
