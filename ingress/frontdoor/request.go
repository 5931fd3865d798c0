package frontdoor

import (
	"github.com/gin-gonic/gin"

	"github.com/toolbus/toolbus/contracts"
)

// ginKey is where a request's Request is stored in its Gin context.
const ginKey = "toolbus.request"

// Request is what the front door knows of one HTTP request, filled in as it
// is decided. The access log writes it as one line; metrics and the trace
// read the server, tool and code. It holds no secret: a credential appears
// only as its fingerprint. Written by the request's own goroutine only.
type Request struct {
	// ID is the toolbus request id (X-Request-Id).
	ID string
	// Caller is set once the gateway key is checked.
	Caller *Caller
	// Server and Tool are the request's server and tool, once decided.
	Server, Tool string
	// TokenFP is the fingerprint of the credential the server receives.
	TokenFP string
	// JobID is the job (or task) the request created or addressed.
	JobID string
	// MCPMethod is the JSON-RPC method of an MCP message.
	MCPMethod string
	// Code is the error code the request was answered with, if any.
	Code contracts.ErrorCode
}

// Begin stores a new Request with id in c and returns it.
func Begin(c *gin.Context, id string) *Request {
	r := &Request{ID: id}
	Attach(c, r)
	return r
}

// Attach stores r, a new Request, in c (Begin, for a Request allocated
// with other per-request state).
func Attach(c *gin.Context, r *Request) { c.Set(ginKey, r) }

// Of returns c's Request (an empty one stored now, if none was begun).
func Of(c *gin.Context) *Request {
	if v, ok := c.Get(ginKey); ok {
		return v.(*Request)
	}
	return Begin(c, "")
}

// Record notes a resolved call's server, tool and credential fingerprint.
func (r *Request) Record(call *Call) {
	r.Server, r.Tool, r.TokenFP = call.Server.Name, call.Tool, call.TokenFP()
}

// KeyName is the caller's key name, "" before the key is checked.
func (r *Request) KeyName() string {
	if r.Caller == nil {
		return ""
	}
	return r.Caller.Key.Name
}
