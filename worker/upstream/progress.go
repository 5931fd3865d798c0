package upstream

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
)

// Progress is one MCP progress notification (notifications/progress) the
// upstream sent about a call.
type Progress struct {
	Progress float64
	// Total is nil when the upstream did not say.
	Total   *float64
	Message string
}

// maxProgressMessage bounds the message kept of a progress notification.
const maxProgressMessage = 1024

// CallOption adjusts one CallTool call.
type CallOption func(*callOptions)

type callOptions struct {
	progress       func(Progress)
	logs           func(json.RawMessage)
	clientRequests ClientRequests
	caps           ClientCaps
}

// applyCallOptions returns the options opts set. (Without any, nothing is
// allocated: the options an option function is given live on the heap.)
func applyCallOptions(opts []CallOption) callOptions {
	if len(opts) == 0 {
		return callOptions{}
	}
	o := new(callOptions)
	for _, opt := range opts {
		opt(o)
	}
	return *o
}

// WithProgress asks the upstream for progress notifications (a progress
// token in the request's _meta) and passes each one to fn. fn runs on the
// transport's reader and must return quickly; it is never called after
// CallTool has returned.
func WithProgress(fn func(Progress)) CallOption {
	return func(o *callOptions) { o.progress = fn }
}

// WithLogs passes the params of every MCP log notification
// (notifications/message) the upstream sends while the call runs to fn. Log
// notifications name no request: each one reaches every call running at the
// time on the same pooled client, which is always the same user's (clients
// are never shared between credentials). fn runs on the transport's reader
// and must return quickly; it is never called after CallTool has returned.
func WithLogs(fn func(params json.RawMessage)) CallOption {
	return func(o *callOptions) { o.logs = fn }
}

// maxLogParams bounds the params of one relayed log notification.
const maxLogParams = 64 << 10

// progressRoutes routes the progress notifications that arrive on one
// pooled client to the calls that asked for them. A client is shared by the
// concurrent calls of one user, so notifications are told apart by their
// progress token; a token is registered on the one client its call uses, so
// a notification can only ever reach a call of the same user.
type progressRoutes struct {
	mu     sync.Mutex
	routes map[string]func(Progress)
	logs   map[uint64]func(json.RawMessage)
}

// progressSeq numbers progress tokens, unique within the process.
var progressSeq atomic.Uint64

// register adds fn under a new token and returns the token and a function
// that removes it (after which fn is never called).
func (r *progressRoutes) register(fn func(Progress)) (string, func()) {
	token := "toolbus-" + strconv.FormatUint(progressSeq.Add(1), 10)
	r.mu.Lock()
	if r.routes == nil {
		r.routes = make(map[string]func(Progress))
	}
	r.routes[token] = fn
	r.mu.Unlock()
	return token, func() {
		r.mu.Lock()
		delete(r.routes, token)
		r.mu.Unlock()
	}
}

// registerLogs adds fn to the log listeners and returns a function that
// removes it (after which fn is never called).
func (r *progressRoutes) registerLogs(fn func(json.RawMessage)) func() {
	id := progressSeq.Add(1)
	r.mu.Lock()
	if r.logs == nil {
		r.logs = make(map[uint64]func(json.RawMessage))
	}
	r.logs[id] = fn
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.logs, id)
		r.mu.Unlock()
	}
}

// dispatch is the client's notification handler. The call's fn runs under
// the lock, so that once unregister has returned it is not running.
func (r *progressRoutes) dispatch(n mcp.JSONRPCNotification) {
	if n.Method == string(mcp.MethodNotificationMessage) {
		r.dispatchLog(n)
		return
	}
	if n.Method != string(mcp.MethodNotificationProgress) {
		return
	}
	fields := n.Params.AdditionalFields
	token, ok := fields["progressToken"].(string)
	if !ok {
		return
	}
	p := Progress{}
	if p.Progress, ok = fields["progress"].(float64); !ok {
		return
	}
	if total, ok := fields["total"].(float64); ok {
		p.Total = &total
	}
	if msg, ok := fields["message"].(string); ok {
		if len(msg) > maxProgressMessage {
			msg = strings.ToValidUTF8(msg[:maxProgressMessage], "")
		}
		p.Message = msg
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fn := r.routes[token]; fn != nil {
		fn(p)
	}
}

// dispatchLog passes a log notification's params to every log listener.
func (r *progressRoutes) dispatchLog(n mcp.JSONRPCNotification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.logs) == 0 {
		return
	}
	p := n.Params
	if len(p.Meta) == 0 {
		p.Meta = nil // mcp-go decodes an absent _meta as {}; relay it as sent
	}
	params, err := json.Marshal(p)
	if err != nil || len(params) > maxLogParams {
		return
	}
	for _, fn := range r.logs {
		fn(params)
	}
}
