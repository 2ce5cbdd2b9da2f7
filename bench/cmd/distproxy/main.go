// Command distproxy runs distribution v3's registry application
// (registry/handlers) as a pull-through cache with filesystem storage: the
// "distribution" target of airlock bench. It prints "distproxy: serving on
// http://ADDR" once it listens and exits on SIGINT or SIGTERM.
//
//	distproxy --remote http://127.0.0.1:6000 --root DIR [--listen 127.0.0.1:0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // registers "filesystem"
	"github.com/sirupsen/logrus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("distproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen `address`")
	root := fs.String("root", "", "filesystem storage root `DIR`")
	remote := fs.String("remote", "", "upstream registry `URL` (proxy.remoteurl)")
	logLevel := fs.String("log-level", "error", "logrus level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *root == "" || *remote == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "distproxy: usage: distproxy --remote URL --root DIR [--listen ADDR]")
		return 2
	}
	lvl, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "distproxy: --log-level: %v\n", err)
		return 2
	}
	logrus.SetLevel(lvl)
	logrus.SetOutput(stderr)

	cfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": *root},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		},
		Proxy: configuration.Proxy{RemoteURL: *remote},
	}
	cfg.Log.Level = configuration.Loglevel(*logLevel)
	cfg.Log.AccessLog.Disabled = true

	app := handlers.NewApp(ctx, cfg)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "distproxy: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(stdout, "distproxy: serving on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintf(stderr, "distproxy: %v\n", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		srv.Close()
	}
	if err := app.Shutdown(); err != nil {
		fmt.Fprintf(stderr, "distproxy: shutdown: %v\n", err)
	}
	return 0
}
