// Command demo-web is the web app Plinth's PreviewEnvironment samples and tests run on real nodes.
//
// It shows what a preview was deployed with, so a test can check it end to end without reading the Pod: the commit
// (PLINTH_COMMIT), the service name (PLINTH_SERVICE) and, for each variable named in DEMO_SECRET_ENV
// (comma-separated, default SESSION_SECRET), the SHA-256 of its value — never the value. Two switches make real
// failures on purpose: DEMO_READY=false makes /healthz answer 503 (a readiness probe that fails) and
// DEMO_EXIT_CODE=<n> exits with n at start (a container that crash-loops).
//
// It writes nothing to disk, so it runs as any user on a read-only root filesystem without /tmp. It logs one JSON
// line per request to stdout and shuts down gracefully on SIGTERM.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const shutdownGrace = 10 * time.Second

// info is what / shows and /info returns.
type info struct {
	Commit   string            `json:"commit"`
	Service  string            `json:"service"`
	Secrets  map[string]string `json:"secrets"`
	Hostname string            `json:"hostname"`
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{if .Service}}{{.Service}} — {{end}}Plinth demo</title></head>
<body>
<h1>Plinth demo{{if .Service}}: {{.Service}}{{end}}</h1>
<dl>
<dt>Commit</dt><dd id="commit">{{.Commit}}</dd>
{{- if .Service}}
<dt>Service</dt><dd id="service">{{.Service}}</dd>
{{- end}}
<dt>Host</dt><dd id="hostname">{{.Hostname}}</dd>
</dl>
{{- if .Names}}
<h2>Secrets (SHA-256 of each value)</h2>
<dl id="secrets">
{{- range .Names}}
<dt>{{.}}</dt><dd>{{index $.Secrets .}}</dd>
{{- end}}
</dl>
{{- end}}
</body>
</html>
`))

func main() {
	if code, set, err := exitCode(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-web:", err)
		os.Exit(2)
	} else if set {
		fmt.Fprintf(os.Stderr, "demo-web: DEMO_EXIT_CODE=%d, exiting with it\n", code)
		os.Exit(code)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(logger); err != nil {
		logger.Error("stopped", "error", err.Error())
		os.Exit(1)
	}
}

// exitCode reads DEMO_EXIT_CODE; a value that is not an integer is an error rather than ignored, so a typo cannot
// turn a test of a failing container into one of a healthy one.
func exitCode() (int, bool, error) {
	value := strings.TrimSpace(os.Getenv("DEMO_EXIT_CODE"))
	if value == "" {
		return 0, false, nil
	}
	code, err := strconv.Atoi(value)
	if err != nil {
		return 0, false, fmt.Errorf("DEMO_EXIT_CODE=%q is not an integer", value)
	}
	return code, true, nil
}

func run(logger *slog.Logger) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// DEMO_HOST narrows the listener (tests bind 127.0.0.1 only); in a Pod it stays empty: every interface.
	listener, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("DEMO_HOST"), port))
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           logRequests(logger, routes(describe(), os.Getenv("DEMO_READY") != "false")),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	logger.Info("listening", "addr", listener.Addr().String())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// describe reads the environment once: it cannot change while the process runs.
func describe() info {
	names := "SESSION_SECRET"
	if configured, ok := os.LookupEnv("DEMO_SECRET_ENV"); ok {
		names = configured
	}
	secrets := map[string]string{}
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		if value, ok := os.LookupEnv(name); ok && name != "" {
			sum := sha256.Sum256([]byte(value))
			secrets[name] = "sha256:" + hex.EncodeToString(sum[:])
		}
	}
	commit := os.Getenv("PLINTH_COMMIT")
	if commit == "" {
		commit = "unknown"
	}
	hostname, _ := os.Hostname()
	return info{Commit: commit, Service: os.Getenv("PLINTH_SERVICE"), Secrets: secrets, Hostname: hostname}
}

func routes(about info, ready bool) http.Handler {
	names := make([]string, 0, len(about.Secrets))
	for name := range about.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, struct {
			info
			Names []string
		}{about, names})
	})
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(about)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready (DEMO_READY=false)\n"))
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

// recorder remembers the status and size of a response for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		started := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, req)
		logger.Info("request",
			"method", req.Method,
			"path", req.URL.Path,
			"status", rec.status,
			"bytes", rec.bytes,
			"duration_ms", float64(time.Since(started).Microseconds())/1000,
			"remote", req.RemoteAddr,
			"user_agent", req.UserAgent(),
		)
	})
}
