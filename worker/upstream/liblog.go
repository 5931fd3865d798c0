package upstream

import (
	"context"
	"errors"
	"log/slog"
)

// classHandler is the slog.Handler mcp-go logs through: every error
// attribute is replaced by its class (Describe), because mcp-go's errors
// carry the upstream's response body, which may echo a credential.
type classHandler struct{ next slog.Handler }

func (h classHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h classHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(classAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h classHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	classed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		classed[i] = classAttr(a)
	}
	return classHandler{next: h.next.WithAttrs(classed)}
}

func (h classHandler) WithGroup(name string) slog.Handler {
	return classHandler{next: h.next.WithGroup(name)}
}

// classAttr replaces an error value by its class, and the value of an
// attribute named like an error or a body (mcp-go passes some as strings)
// by a fixed mark.
func classAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Describe(err))
		}
	}
	switch a.Key {
	case "err", "error", "body", "message", "line":
		if v.Kind() == slog.KindString || v.Kind() == slog.KindAny {
			return slog.String(a.Key, Describe(errors.New(v.String())))
		}
	}
	if v.Kind() == slog.KindGroup {
		group := v.Group()
		classed := make([]any, len(group))
		for i, g := range group {
			classed[i] = classAttr(g)
		}
		return slog.Group(a.Key, classed...)
	}
	return a
}
