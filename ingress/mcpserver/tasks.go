package mcpserver

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/toolbus/toolbus/contracts"
	"github.com/toolbus/toolbus/ingress/frontdoor"
)

// MCP Tasks (2025-11-25) on toolbus's async jobs: a task is a job. Its id
// is the job id, its state lives in NATS (so any replica serves any task),
// and it belongs to the gateway key and the user's Authorization that
// created it, exactly like a job submitted on the REST API (the two views
// show the same jobs).

// relatedTaskKey is the _meta key that ties a message to a task.
const relatedTaskKey = "io.modelcontextprotocol/related-task"

// taskView is a Task as MCP shows it.
type taskView struct {
	TaskID        string `json:"taskId"`
	Status        string `json:"status"`
	StatusMessage string `json:"statusMessage,omitempty"`
	CreatedAt     string `json:"createdAt"`
	LastUpdatedAt string `json:"lastUpdatedAt"`
	TTL           *int64 `json:"ttl"`
	PollInterval  int64  `json:"pollInterval"`
}

// taskStatus maps a job state to a task status.
func taskStatus(s contracts.JobStatus) string {
	switch s {
	case contracts.JobSucceeded:
		return "completed"
	case contracts.JobFailed, contracts.JobExpired:
		return "failed"
	case contracts.JobCancelled:
		return "cancelled"
	default:
		return "working"
	}
}

func (x *exchange) taskView(rec *contracts.JobRecord) taskView {
	updated := rec.CreatedAt
	if rec.StartedAt != nil {
		updated = *rec.StartedAt
	}
	if rec.FinishedAt != nil {
		updated = *rec.FinishedAt
	}
	ttl := x.s.cfg.Jobs.Retention.D().Milliseconds()
	v := taskView{
		TaskID: rec.ID, Status: taskStatus(rec.Status),
		CreatedAt: rec.CreatedAt.UTC().Format(time.RFC3339Nano), LastUpdatedAt: updated.UTC().Format(time.RFC3339Nano),
		TTL: &ttl, PollInterval: taskPollInterval,
	}
	switch {
	case rec.Error != nil:
		v.StatusMessage = string(rec.Error.Code) + ": " + rec.Error.Message
	case rec.Progress != nil && rec.Progress.Message != "":
		v.StatusMessage = rec.Progress.Message
	}
	return v
}

// createTask submits a task-augmented tools/call as a job and answers with
// the task (CreateTaskResult).
func (x *exchange) createTask(m *message, call *frontdoor.Call, args json.RawMessage) answer {
	if x.s.jobs == nil {
		return answer{err: newRPCError(codeInvalidParams, "this gateway does not run tasks")}
	}
	rec, _, err := x.s.jobs.Submit(requestCtx(x.c), call.Submission(args, ""))
	if err != nil {
		return answer{err: wireError(err, m.Method)}
	}
	x.record().JobID = rec.ID
	result, _ := json.Marshal(map[string]any{"task": x.taskView(rec)})
	return answer{result: result}
}

// tasks answers tasks/get, tasks/result, tasks/list and tasks/cancel.
func (x *exchange) tasks(m *message) answer {
	if x.s.jobs == nil {
		return answer{err: newRPCError(codeMethodNotFound, "this gateway does not run tasks")}
	}
	if m.Method == "tasks/list" {
		return x.listTasks(m)
	}
	var p struct {
		TaskID string `json:"taskId"`
	}
	if e := asParams(m.Params, &p); e != nil {
		return answer{err: e}
	}
	if p.TaskID == "" {
		return answer{err: newRPCError(codeInvalidParams, m.Method+" needs a taskId")}
	}
	x.record().JobID = clip(p.TaskID)
	ctx := requestCtx(x.c)
	switch m.Method {
	case "tasks/get":
		rec, err := x.task(p.TaskID)
		if err != nil {
			return answer{err: wireError(err, m.Method)}
		}
		return x.taskAnswer(rec)
	case "tasks/cancel":
		rec, err := x.task(p.TaskID)
		if err != nil {
			return answer{err: wireError(err, m.Method)}
		}
		if rec.Status.Terminal() {
			return answer{err: newRPCError(codeInvalidParams, "cannot cancel task: already in terminal status '"+taskStatus(rec.Status)+"'")}
		}
		if rec, err = x.s.jobs.Cancel(ctx, x.owner(), p.TaskID); err != nil {
			return answer{err: wireError(err, m.Method)}
		}
		return x.taskAnswer(rec)
	default: // tasks/result
		return x.taskResult(p.TaskID)
	}
}

// task reads the caller's task id, also checking it belongs to this
// endpoint's server: another server's task is as missing as another
// caller's.
func (x *exchange) task(id string) (*contracts.JobRecord, *contracts.Error) {
	rec, err := x.s.jobs.Get(requestCtx(x.c), x.owner(), id)
	if err != nil {
		return nil, taskError(err, id)
	}
	if !x.reaches(rec.Server) {
		return nil, taskError(contracts.NewError(contracts.CodeNotFound, "no job"), id)
	}
	return rec, nil
}

func taskError(err *contracts.Error, id string) *contracts.Error {
	if err.Code == contracts.CodeNotFound {
		return contracts.NewError(contracts.CodeNotFound, "no task %q", clip(id))
	}
	return err
}

func (x *exchange) taskAnswer(rec *contracts.JobRecord) answer {
	result, _ := json.Marshal(x.taskView(rec))
	return answer{result: result}
}

// taskResult answers tasks/result: it waits until the task is terminal
// (bounded by the ingress's max_timeout, at most maxTaskResultWait, and by
// the client staying), then answers what the tools/call would have: the
// result, or its error, tied to the task in _meta.
func (x *exchange) taskResult(id string) answer {
	ctx := requestCtx(x.c)
	rec, err := x.task(id)
	if err != nil {
		return answer{err: wireError(err, "tasks/result")}
	}
	deadline := time.Now().Add(min(x.s.cfg.Ingress.MaxTimeout.D(), maxTaskResultWait))
	for !rec.Status.Terminal() {
		wait := min(x.s.cfg.Jobs.MaxWait.D(), time.Until(deadline))
		if wait <= 0 || ctx.Err() != nil {
			e := contracts.NewError(contracts.CodeTimeout, "task %s is still working; ask again", rec.ID)
			return answer{err: wireError(e, "tasks/result")}
		}
		if rec, err = x.s.jobs.Wait(ctx, x.owner(), id, wait); err != nil {
			return answer{err: wireError(taskError(err, id), "tasks/result")}
		}
	}
	meta := map[string]any{relatedTaskKey: map[string]string{"taskId": rec.ID}}
	switch rec.Status {
	case contracts.JobSucceeded:
		result, err := x.s.jobs.Result(ctx, rec)
		if err != nil {
			return answer{err: wireError(taskError(err, id), "tasks/result")}
		}
		return answer{result: withMeta(result, meta)}
	case contracts.JobCancelled:
		return answer{err: &rpcError{Code: codeInternalError, Message: "the task was cancelled", Data: rec.Error}}
	}
	e := rec.Error
	if e == nil {
		e = contracts.NewError(contracts.CodeInternal, "the task failed")
	}
	a := x.toolFailure(e, "tools/call")
	a.httpErr = nil // the failure belongs to the task, not to this request
	if a.result != nil {
		a.result = withMeta(a.result, meta)
	}
	return a
}

// metaWant is the member of a result withMeta changes.
var metaWant = contracts.NewJSONWant("_meta")

// withMeta adds fields to a result object's _meta. The result, valid JSON
// (a worker's), is scanned once and written around: only its _meta is
// decoded and encoded again.
func withMeta(result json.RawMessage, fields map[string]any) json.RawMessage {
	scan, err := contracts.ScanJSON(result, metaWant)
	obj := bytes.TrimSpace(result)
	if err != nil || len(obj) == 0 || obj[0] != '{' {
		return result
	}
	if scan.Aliased { // a key encoding/json may read as "_meta": it decides
		return withMetaDecoded(result, fields)
	}
	meta := map[string]any{}
	i := scan.Last(-1, "_meta")
	if i >= 0 {
		_ = json.Unmarshal(scan.Members[i].Value, &meta)
		if meta == nil { // "_meta": null
			meta = map[string]any{}
		}
	}
	for k, v := range fields {
		meta[k] = v
	}
	encoded, err := json.Marshal(meta)
	if err != nil {
		return result
	}
	if i >= 0 {
		return scan.Replace(-1, encoded)
	}
	rest := bytes.TrimSpace(obj[1:])
	out := make([]byte, 0, len(obj)+len(encoded)+16)
	out = append(append(out, `{"_meta":`...), encoded...)
	if rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// withMetaDecoded is withMeta through encoding/json, for a result whose
// keys the scan cannot match as encoding/json would.
func withMetaDecoded(result json.RawMessage, fields map[string]any) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(result, &obj) != nil || obj == nil {
		return result
	}
	meta := map[string]any{}
	_ = json.Unmarshal(obj["_meta"], &meta)
	if meta == nil {
		meta = map[string]any{}
	}
	for k, v := range fields {
		meta[k] = v
	}
	obj["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(obj)
	if err != nil {
		return result
	}
	return out
}

// listTasks answers tasks/list: the caller's tasks, newest first, a page at
// a time (the cursor is the last task id of the previous page).
func (x *exchange) listTasks(m *message) answer {
	var p struct {
		Cursor string `json:"cursor"`
	}
	if e := asParams(m.Params, &p); e != nil {
		return answer{err: e}
	}
	if p.Cursor != "" && !contracts.ValidJobID(p.Cursor) {
		return answer{err: newRPCError(codeInvalidParams, "invalid cursor")}
	}
	recs, next, err := x.s.jobs.List(requestCtx(x.c), x.owner(), "", tasksPageSize, p.Cursor)
	if err != nil {
		return answer{err: wireError(err, m.Method)}
	}
	views := []taskView{}
	for _, rec := range recs {
		if x.reaches(rec.Server) {
			views = append(views, x.taskView(rec))
		}
	}
	out := map[string]any{"tasks": views}
	if next != "" {
		out["nextCursor"] = next
	}
	result, _ := json.Marshal(out)
	return answer{result: result}
}
