package validate

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	from, name string
	body       []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	var (
		stages []stage
		line   string
	)
	for _, raw := range strings.Split(string(readFile(t, "deploy", "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(raw)
		if line == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			line += cont + " "
			continue
		}
		line += trimmed
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a runtime stage", len(stages))
	}
	return stages
}

// The runtime stage is minimal and non-root; the build stage uses the Go
// version go.mod asks for.
func TestDockerfile_Stages(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]
	mod, err := modfile.Parse("go.mod", readFile(t, "go.mod"), nil)
	if err != nil {
		t.Fatal(err)
	}
	goMinor := strings.Join(strings.SplitN(mod.Go.Version, ".", 3)[:2], ".")
	if build.from != "golang:"+goMinor && !strings.HasPrefix(build.from, "golang:"+goMinor+".") && !strings.HasPrefix(build.from, "golang:"+goMinor+"-") {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod says go %s)", build.from, goMinor, mod.Go.Version)
	}
	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(final.from) {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static…:nonroot", final.from)
	}
	want := map[string]string{
		"COPY":       "--from=" + build.name + " /out/toolbus /toolbus",
		"USER":       "nonroot:nonroot",
		"ENTRYPOINT": `["/toolbus"]`,
	}
	for _, in := range final.body {
		if w, ok := want[in.cmd]; ok && in.args == w {
			delete(want, in.cmd)
		}
		if in.cmd == "RUN" {
			t.Errorf("runtime stage runs %q: the base has no shell", in.args)
		}
	}
	for cmd, args := range want {
		t.Errorf("runtime stage: no %s %s", cmd, args)
	}
}

// The build stage, replayed here as Docker would run it (its COPY lines
// into an empty directory, its RUN lines with sh), builds both binaries:
// static, stripped ELF files whose healthcheck command works.
func TestDockerfile_BuildStageMakesStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	build := parseDockerfile(t)[0]
	out := t.TempDir()
	for _, cmd := range []string{"ingress", "worker"} {
		bin := replayBuildStage(t, build, map[string]string{"CMD": cmd}, out)
		t.Run(cmd, func(t *testing.T) {
			checkStaticELF(t, bin)
			checkHealthcheck(t, bin)
			if cmd == "ingress" {
				checkNoDevMode(t, bin)
			}
		})
	}
}

// replayBuildStage runs stage's instructions in a fresh directory with args
// for its ARGs and returns the binary it wrote to /out/toolbus (redirected
// to outDir).
func replayBuildStage(t *testing.T, s stage, args map[string]string, outDir string) string {
	t.Helper()
	work := t.TempDir()
	dir := work
	bin := filepath.Join(outDir, "toolbus-"+args["CMD"])
	env := os.Environ()
	var sawBuild bool
	for _, in := range s.body {
		switch in.cmd {
		case "WORKDIR":
			dir = filepath.Join(work, in.args)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			v, ok := args[name]
			if !ok {
				v = def
			}
			env = append(env, name+"="+v)
		case "ENV":
			env = append(env, strings.Fields(in.args)...)
		case "COPY":
			f := strings.Fields(in.args)
			if strings.HasPrefix(f[0], "--") {
				t.Fatalf("build stage: COPY %s: only copies from the context are replayed", in.args)
			}
			dest := f[len(f)-1]
			for _, src := range f[:len(f)-1] {
				copyInto(t, repoPath(src), dir, dest, len(f) > 2 || strings.HasSuffix(dest, "/"))
			}
		case "RUN":
			script := in.args
			if strings.Contains(script, " go build ") {
				sawBuild = true
				script = strings.ReplaceAll(script, "/out/toolbus", bin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			c := exec.CommandContext(ctx, "sh", "-c", script)
			c.Dir, c.Env = dir, env
			outb, err := c.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("RUN %s (CMD=%s): %v\n%s", in.args, args["CMD"], err, outb)
			}
		}
	}
	if !sawBuild {
		t.Fatal("build stage: no RUN with go build")
	}
	return bin
}

// copyInto copies src (file or directory) as Docker's COPY does to dest,
// relative to dir.
func copyInto(t *testing.T, src, dir, dest string, destIsDir bool) {
	t.Helper()
	target := filepath.Join(dir, dest)
	info, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() {
		if destIsDir {
			target = filepath.Join(target, filepath.Base(src))
		}
		copyFile(t, src, target)
		return
	}
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		copyFile(t, p, filepath.Join(target, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkNoDevMode: the image's ingress is built without dev mode (-tags
// nodev): --dev fails at once, saying so.
func checkNoDevMode(t *testing.T, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--dev").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "built without dev mode") {
		t.Errorf("%s --dev: %v\n%s\nwant it refused: the image is built with -tags nodev", filepath.Base(bin), err, out)
	}
}

// checkStaticELF: no program interpreter, no shared library, no symbol
// table (-s -w): it runs on distroless static, which has no libc.
func checkStaticELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has a %v segment: dynamically linked", filepath.Base(path), p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: needs %v", filepath.Base(path), libs)
	}
	if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		t.Errorf("%s: has a symbol table (want -ldflags -s -w): %v", filepath.Base(path), err)
	}
}

// checkHealthcheck runs `BIN healthcheck URL` against real HTTP servers.
func checkHealthcheck(t *testing.T, bin string) {
	t.Helper()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"status":"ready"}`)
	}))
	defer ok.Close()
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"code":"no_workers"}}`, http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	// An event stream that never ends, like GET /mcp on an MCP server: the
	// status decides, the body is not waited for.
	streamDone := make(chan struct{})
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-streamDone:
		}
	}))
	defer stream.Close()
	defer close(streamDone)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	for _, c := range []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{ok.URL + "/readyz"}, 0, "200 OK"},
		{[]string{"--timeout", "10s", stream.URL + "/mcp"}, 0, "200 OK"},
		{[]string{ok.URL + "/other"}, 1, "404 Not Found"},
		{[]string{unready.URL + "/readyz"}, 1, "503 Service Unavailable"},
		{[]string{closedURL + "/readyz"}, 1, "connection refused"},
		{[]string{"not a url"}, 1, "want an http(s) URL"},
		{nil, 1, "usage:"},
	} {
		code, out := runBinary(t, bin, append([]string{"healthcheck"}, c.args...)...)
		if code != c.wantCode || !strings.Contains(out, c.wantOut) {
			t.Errorf("healthcheck %v: exit %d, output %q; want exit %d and %q", c.args, code, out, c.wantCode, c.wantOut)
		}
	}
}

func runBinary(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("%s %v: %v", bin, args, err)
		return 0, ""
	}
}
