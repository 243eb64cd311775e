// Command mlsworker applies MLS messages and commands from NATS JetStream
// to hosted MLS members (package worker). With no --nats URL it starts an
// embedded NATS server with JetStream, its files under --data, listening
// on 127.0.0.1 so that other processes (mlsadmin, clients, more workers)
// can connect.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/worker"
)

type cli struct {
	NATS        string        `name:"nats" env:"MLS_NATS_URL" help:"NATS server or cluster URL(s), comma-separated; empty starts an embedded server."`
	Data        string        `name:"data" env:"MLS_DATA" default:"mlsworker-data" help:"Directory of the embedded server's JetStream files (and of a generated root key)."`
	Host        string        `name:"host" env:"MLS_HOST" default:"127.0.0.1" help:"Interface the embedded server listens on."`
	Port        int           `name:"port" env:"MLS_PORT" default:"4222" help:"Client port of the embedded server (-1: any free port)."`
	SyncAlways  bool          `name:"sync-always" env:"MLS_SYNC_ALWAYS" help:"Embedded server: fsync every write (otherwise every 2 minutes; a process crash loses nothing, a machine crash up to that)."`
	User        string        `name:"user" env:"MLS_NATS_USER" help:"NATS user."`
	Password    string        `name:"password" env:"MLS_NATS_PASSWORD" help:"NATS password."`
	Token       string        `name:"token" env:"MLS_NATS_TOKEN" help:"NATS token."`
	NKey        string        `name:"nkey" env:"MLS_NATS_NKEY" help:"File of an NKey seed." type:"path"`
	Creds       string        `name:"creds" env:"MLS_NATS_CREDS" help:"NATS credentials file." type:"path"`
	TLSCA       string        `name:"tls-ca" env:"MLS_NATS_TLS_CA" help:"CA certificates for the server's certificate." type:"path"`
	TLSCert     string        `name:"tls-cert" env:"MLS_NATS_TLS_CERT" help:"Client certificate." type:"path"`
	TLSKey      string        `name:"tls-key" env:"MLS_NATS_TLS_KEY" help:"Client certificate's key." type:"path"`
	RootKeyFile string        `name:"root-key-file" env:"MLS_ROOT_KEY_FILE" help:"File of the root key that wraps the members' secrets (32 bytes or 64 hex digits, mode 0600). Or set MLS_ROOT_KEY. With neither, an embedded-mode worker generates <data>/root.key." type:"path"`
	Prefix      string        `name:"prefix" env:"MLS_PREFIX" default:"mls" help:"First token of every subject."`
	Partitions  int           `name:"partitions" env:"MLS_PARTITIONS" default:"16" help:"Partitions of the log stream (fixed when it is created)."`
	Replicas    int           `name:"replicas" env:"MLS_REPLICAS" default:"1" help:"Replicas of the streams and buckets created (3 in a cluster)."`
	MemoryStore bool          `name:"memory" env:"MLS_MEMORY" help:"Create streams and buckets in memory storage (nothing on disk; lost when all servers stop)."`
	PinnedTTL   time.Duration `name:"pinned-ttl" env:"MLS_PINNED_TTL" default:"5s" help:"How long a partition stays with a worker that stopped: the failover time."`
	AckWait     time.Duration `name:"ack-wait" env:"MLS_ACK_WAIT" default:"0s" help:"How long the server waits for a worker's acknowledgement before redelivering (a worker renews it while it works); at most and by default --pinned-ttl/4, so a dead worker's inputs go to the next worker before newer ones."`
	Batch       int           `name:"batch" env:"MLS_BATCH" default:"1" help:"Inputs of a partition applied before their changes are stored and they are acknowledged. Experimental above 1: a storage outage longer than the ack wait can reorder a partition's inputs."`
	FlushDelay  time.Duration `name:"flush-delay" env:"MLS_FLUSH_DELAY" default:"2ms" help:"How long a batch waits for more inputs before it is stored and acknowledged."`
	PastEpochs  int           `name:"past-epochs" env:"MLS_PAST_EPOCHS" default:"2" help:"Past epochs whose secrets hosted members keep, to read messages sent before a commit that arrive after it."`
	Metrics     string        `name:"metrics" env:"MLS_METRICS_ADDR" default:"127.0.0.1:9464" help:"Address of the HTTP endpoint with /metrics (Prometheus), /healthz and /readyz; empty for none."`
	LogLevel    slog.Level    `name:"log-level" env:"MLS_LOG_LEVEL" default:"info" help:"debug, info, warn or error."`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Description("Applies MLS messages and commands from NATS JetStream to hosted MLS members."))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &c, log); err != nil {
		log.Error("mlsworker stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *cli, log *slog.Logger) error {
	var nc *nats.Conn
	var err error
	rootFile := c.RootKeyFile
	if c.NATS == "" {
		srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: c.Data, Host: c.Host, Port: c.Port, SyncAlways: c.SyncAlways, Logger: log})
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		log.Info("embedded NATS server started", "url", srv.ClientURL(), "store", srv.StoreDir())
		if nc, err = srv.Connect(nats.Name("mlsworker")); err != nil {
			return err
		}
		if rootFile == "" && os.Getenv("MLS_ROOT_KEY") == "" {
			rootFile = filepath.Join(c.Data, "root.key")
			if _, err := os.Stat(rootFile); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(rootFile, []byte(jetstore.GenerateRootKey()+"\n"), 0o600); err != nil {
					return err
				}
				log.Warn("generated a root key; keep it with the data, and provide your own in production", "file", rootFile)
			}
		}
	} else {
		nc, err = natsrv.Connect(ctx, natsrv.ConnectOptions{URL: c.NATS, Name: "mlsworker", User: c.User, Password: c.Password, Token: c.Token,
			NKeySeedFile: c.NKey, CredsFile: c.Creds, TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey, MaxReconnects: -1})
		if err != nil {
			return err
		}
		log.Info("connected to NATS", "servers", nc.ConnectedUrlRedacted())
	}
	defer nc.Drain()
	var root []byte
	if rootFile != "" {
		root, err = jetstore.LoadRootKeyFile(rootFile)
	} else {
		root, err = jetstore.LoadRootKeyEnv("MLS_ROOT_KEY")
	}
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	storage := jetstream.FileStorage
	if c.MemoryStore {
		storage = jetstream.MemoryStorage
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := worker.Config{Metrics: reg, JS: js, Subjects: events.Subjects{Prefix: c.Prefix}, Partitions: c.Partitions, Replicas: c.Replicas, Storage: storage,
		Store: jetstore.Options{RootKey: root, Replicas: c.Replicas, Storage: storage, Logger: log}, PinnedTTL: c.PinnedTTL, AckWait: c.AckWait, Batch: c.Batch, FlushDelay: c.FlushDelay, Logger: log}
	cfg.Engine.RatchetTreeExtension = true
	// Application messages sent just before a commit arrive after it: keep
	// the previous epoch's secrets to read them (RFC 9420 §15.3, §14).
	cfg.Engine.MaxPastEpochs = c.PastEpochs
	w, err := worker.New(ctx, cfg)
	if err != nil {
		return err
	}
	if c.Metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { rw.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
			if !w.Ready() {
				http.Error(rw, "not ready", http.StatusServiceUnavailable)
				return
			}
			rw.Write([]byte("ready\n"))
		})
		hs := &http.Server{Addr: c.Metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", c.Metrics)
		if err != nil {
			return err
		}
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("metrics and health endpoints", "addr", ln.Addr().String())
	}
	log.Info("worker running", "partitions", c.Partitions, "prefix", c.Prefix)
	err = w.Run(ctx)
	log.Info("worker drained and stopped")
	return err
}
