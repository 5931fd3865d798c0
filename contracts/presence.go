package contracts

// TypeIngressPresence is an ingress replica's announcement on
// IngressPresenceSubject.
const TypeIngressPresence = "toolbus.ingress.presence.v1"

// IngressPresence says that the ingress replica Replica (a random id,
// new at each start) is alive. Replicas send one at intervals and count
// those they have heard from recently, to divide the gateway keys' limits
// among themselves (ingress/limits).
type IngressPresence struct {
	Type    string `json:"type"`
	Replica string `json:"replica"`
}

// DecodeIngressPresence decodes and checks an IngressPresence.
func DecodeIngressPresence(data []byte) (*IngressPresence, error) {
	var p IngressPresence
	if err := decode(data, &p); err != nil {
		return nil, err
	}
	if err := checkType(p.Type, TypeIngressPresence); err != nil {
		return nil, err
	}
	if p.Replica == "" || len(p.Replica) > maxIDLen {
		return nil, badMessage("replica must be 1 to %d bytes", maxIDLen)
	}
	return &p, nil
}
