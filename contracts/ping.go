package contracts

// TypePingResponse is a worker's answer on PingSubject.
const TypePingResponse = "toolbus.ping.response.v1"

// PingResponse tells who answered and which servers it serves. A ping
// request has an empty body.
type PingResponse struct {
	Type    string   `json:"type"`
	Worker  string   `json:"worker"`
	Servers []string `json:"servers"`
}
