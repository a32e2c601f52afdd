// Package etcdstore keeps the dispatcher's durable state in etcd, for a
// failover group of dispatcher nodes (docs/failover.md): the queue (job
// records), the observers' cursors, the runners' newest incarnations and
// the index of builds the dispatcher consults, with the same meaning as
// the SQLite store (cluster adapts it to the dispatcher's Store port), and
// fences every write on the leader's election key (Batch.Fence).
//
// # Layout
//
// Under the prefix (default /volt):
//
//	jobs/<build id>/<job id>          a JobRecord (ids zero-padded to 20 digits)
//	open/<build id>/<job id>          present while the job is not done or its
//	                                  result not forwarded: LoadQueue reads these
//	commits/<repo>/<commit>/<build>/<index>  "<build id>/<job id>": ArchivedJobs
//	                                  and NewestBuild read one commit's keys
//	cursors/<repo>/<branch>           a Cursor
//	incarnations/<runner>             the newest incarnation, decimal
//	meta/maxid                        the largest job id ever used, decimal
//	pending/<batch>/<n>, pending/<batch>/commit   a batch too big for one
//	                                  transaction, while it is written
//	election/…                        the leader election (concurrency.Election)
//
// Repositories, commits and branches are path-escaped, so a key never has
// more parts than its pattern. Values are deterministic protobuf.
//
// # Transactions and their limits
//
// etcd takes at most 128 operations and 1.5 MiB in one transaction by
// default. A job record costs three operations (record, open marker,
// commit index). A batch that fits (maxOps operations, maxBytes bytes) is
// one fenced transaction: the common case, a few jobs per batch. A bigger
// one (a 200-job pipeline arriving at once) stays atomic: its operations
// are written in chunks under pending/<batch>/, each chunk fenced; one
// fenced transaction then marks the batch committed; then each chunk is
// applied to its keys and deleted. A new leader's LoadQueue finishes every
// committed batch the old leader did not apply, and drops the uncommitted
// ones (nobody heard of them: group commit holds every effect until its
// batch is durable).
//
// # Growth
//
// Finished jobs stay (as SQLite keeps them), about 3 keys and 0.5–2 KiB per
// job. etcd keeps every revision until it is compacted: run etcd with
// --auto-compaction-retention (for example 1h) and a --quota-backend-bytes
// that fits the history you keep, and defragment after large deletes.
// Beyond a few million jobs, keep the failover group for the queue and
// let the reporter's SQLite store hold the history (it does already).
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Config says how to reach etcd.
type Config struct {
	// Endpoints are the members' host:port.
	Endpoints []string
	// CA, Cert and Key are PEM files for mutual TLS to etcd; all empty
	// for plain connections.
	CA, Cert, Key string
	// Prefix is where Volt's keys live (default /volt).
	Prefix string
	// DialTimeout bounds the first connection (default 5 s).
	DialTimeout time.Duration
	// RequestTimeout bounds each request (default 5 s).
	RequestTimeout time.Duration
}

// DefaultPrefix is where Volt's keys live unless Config.Prefix says otherwise.
const DefaultPrefix = "/volt"

// Batch is one group of queue changes that become durable together (the
// dispatcher's group-commit batch).
type Batch struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	Incarnations []*messages.RunnerIncarnation
	// Fence, when set, is the election key the writer won with: the batch
	// commits only if that key still exists with that create revision.
	Fence Fence
}

// Fence names an election key and the create revision its owner won with.
type Fence struct {
	Key      string
	Revision int64
}

// IsZero reports whether f fences nothing.
func (f Fence) IsZero() bool { return f.Key == "" && f.Revision == 0 }

// ErrFenced is wrapped by the error of a write refused because the
// writer's election key is gone or was won again.
var ErrFenced = errors.New("write fenced: the election key is gone or was won again")

// Limits of one transaction, below etcd's defaults (128 operations,
// 1.5 MiB) with room for the fence and the bookkeeping.
const (
	maxOps   = 120
	maxBytes = 1 << 20
)

// DB is a connection to etcd holding Volt's dispatcher state.
type DB struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration

	mu sync.Mutex
	// maxID and incs are what this node last wrote or read: only the
	// leader writes (fenced), so they never go backwards.
	maxID int64
	incs  map[string]int64
	// stats count what the store sent, for the benchmarks.
	stats Stats
	// lead is the fence of the leadership this node holds (see Lead).
	lead Fence
}

// Stats counts the store's requests and the bytes of the values it wrote.
type Stats struct {
	Txns, Ops, ValueBytes, Reads int64
}

// Open connects to etcd.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints: pass --etcd HOST:2379[,HOST:2379…]")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	tlsCfg, err := ClientTLS(cfg.CA, cfg.Cert, cfg.Key)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout, TLS: tlsCfg,
		Logger: zap.NewNop(), Context: ctx, DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	db := &DB{cli: cli, prefix: strings.TrimRight(cfg.Prefix, "/"), timeout: cfg.RequestTimeout, incs: map[string]int64{}}
	// The client connects lazily: ask once so that a wrong address or
	// certificate is said now, not at the first write.
	rctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(rctx, db.key("meta", "maxid")); err != nil {
		cli.Close()
		return nil, fmt.Errorf("reach etcd at %s: %w (is it running, and are --etcd-ca/--etcd-cert/--etcd-key right?)", strings.Join(cfg.Endpoints, ","), err)
	}
	return db, nil
}

// ClientTLS is the mutual TLS of a client of etcd: caFile's CA verifies the
// members, certFile and keyFile are what the client presents. All three
// empty means plain connections (nil).
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := Config{CA: caFile, Cert: certFile, Key: keyFile}
	if cfg.CA == "" && cfg.Cert == "" && cfg.Key == "" {
		return nil, nil
	}
	if cfg.CA == "" || cfg.Cert == "" || cfg.Key == "" {
		return nil, errors.New("etcd TLS: pass all three of --etcd-ca, --etcd-cert and --etcd-key")
	}
	pem, err := os.ReadFile(cfg.CA)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("etcd TLS: %s holds no PEM certificate", cfg.CA)
	}
	cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: load the client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Client is the etcd client, for the election.
func (db *DB) Client() *clientv3.Client { return db.cli }

// Prefix is where Volt's keys live.
func (db *DB) Prefix() string { return db.prefix }

// Close closes the connection.
func (db *DB) Close() error { return db.cli.Close() }

// Path names the store for the ERROR a failing write logs (host.PathOf).
func (db *DB) Path() string {
	return "etcd " + strings.Join(db.cli.Endpoints(), ",") + db.prefix
}

// Stats returns the counts so far.
func (db *DB) Stats() Stats {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.stats
}

func (db *DB) key(parts ...string) string { return db.prefix + "/" + strings.Join(parts, "/") }

func id20(id int64) string { return fmt.Sprintf("%020d", id) }

func esc(s string) string { return url.PathEscape(s) }

func (db *DB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), db.timeout)
}

var marshal = proto.MarshalOptions{Deterministic: true}

// op is one put or delete, as a pending batch keeps it.
type op struct {
	Key    string `json:"k"`
	Value  []byte `json:"v,omitempty"`
	Delete bool   `json:"d,omitempty"`
}

func (o op) etcd() clientv3.Op {
	if o.Delete {
		return clientv3.OpDelete(o.Key)
	}
	return clientv3.OpPut(o.Key, string(o.Value))
}

func (o op) size() int { return len(o.Key) + len(o.Value) }

// ops turns a batch into puts and deletes.
func (db *DB) ops(b Batch) ([]op, error) {
	var out []op
	db.mu.Lock()
	maxID := db.maxID
	db.mu.Unlock()
	newMax := maxID
	for _, rec := range b.Jobs {
		j := rec.GetJob()
		if j == nil || j.GetId() <= 0 || j.GetRepo() == "" || j.GetCommit() == "" {
			return nil, fmt.Errorf("save job %v: a job needs an id, a repo and a commit: this is a bug in the caller", j)
		}
		blob, err := marshal.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("save job %d: encode: %w", j.GetId(), err)
		}
		build, id := id20(j.BuildID()), id20(j.GetId())
		out = append(out, op{Key: db.key("jobs", build, id), Value: blob},
			op{Key: db.key("commits", esc(j.GetRepo()), esc(j.GetCommit()), fmt.Sprintf("%010d", j.GetBuild()), fmt.Sprintf("%06d", j.GetIndex())),
				Value: []byte(build + "/" + id)})
		open := op{Key: db.key("open", build, id)}
		if rec.GetState() == messages.JobState_JOB_STATE_DONE && rec.GetForwarded() {
			open.Delete = true
		} else {
			open.Value = []byte{}
		}
		out = append(out, open)
		newMax = max(newMax, j.GetId())
	}
	if newMax > maxID {
		out = append(out, op{Key: db.key("meta", "maxid"), Value: []byte(strconv.FormatInt(newMax, 10))})
	}
	for _, c := range b.Cursors {
		if c.GetRepo() == "" || c.GetBranch() == "" {
			return nil, fmt.Errorf("save cursor %v: a cursor needs a repo and a branch: this is a bug in the caller", c)
		}
		blob, err := marshal.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("save cursor %s %s: encode: %w", c.GetRepo(), c.GetBranch(), err)
		}
		out = append(out, op{Key: db.key("cursors", esc(c.GetRepo()), esc(c.GetBranch())), Value: blob})
	}
	db.mu.Lock()
	for _, r := range b.Incarnations {
		if r.GetRunnerId() == "" {
			db.mu.Unlock()
			return nil, fmt.Errorf("save runner incarnation %v: empty runner id: this is a bug in the caller", r)
		}
		if r.GetIncarnation() > db.incs[r.GetRunnerId()] {
			out = append(out, op{Key: db.key("incarnations", esc(r.GetRunnerId())), Value: []byte(strconv.FormatInt(r.GetIncarnation(), 10))})
		}
	}
	db.mu.Unlock()
	return out, nil
}

// fence is the compare every write of a leader carries (none for a zero Fence).
func fence(f Fence) []clientv3.Cmp {
	if f.IsZero() {
		return nil
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Revision)}
}

// txn commits ops if f holds; ErrFenced when it does not.
func (db *DB) txn(f Fence, ops []op, what string) error {
	eops := make([]clientv3.Op, len(ops))
	size := 0
	for i, o := range ops {
		eops[i] = o.etcd()
		size += len(o.Value)
	}
	ctx, cancel := db.ctx()
	defer cancel()
	resp, err := db.cli.Txn(ctx).If(fence(f)...).Then(eops...).Commit()
	db.mu.Lock()
	db.stats.Txns++
	db.stats.Ops += int64(len(ops))
	db.stats.ValueBytes += int64(size)
	db.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s in %s: %w", what, db.Path(), err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: election key %s is gone or was won again (revision %d): %w", what, f.Key, f.Revision, ErrFenced)
	}
	return nil
}

// Save makes b durable atomically, only while b.Fence holds.
func (db *DB) Save(b Batch) error {
	ops, err := db.ops(b)
	if err != nil {
		return err
	}
	if len(ops) == 0 && b.Fence.IsZero() {
		return nil
	}
	size := 0
	for _, o := range ops {
		size += o.size()
	}
	if len(ops) <= maxOps && size <= maxBytes {
		err = db.txn(b.Fence, ops, "save the queue")
	} else {
		err = db.saveLarge(b.Fence, ops)
	}
	if err != nil {
		return err
	}
	db.saved(b)
	return nil
}

// saved notes the largest id and the incarnations b made durable.
func (db *DB) saved(b Batch) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, rec := range b.Jobs {
		db.maxID = max(db.maxID, rec.GetJob().GetId())
	}
	for _, r := range b.Incarnations {
		db.incs[r.GetRunnerId()] = max(db.incs[r.GetRunnerId()], r.GetIncarnation())
	}
}

// chunks splits ops into groups that each fit one transaction with room
// for one more operation.
func chunks(ops []op) [][]op {
	var out [][]op
	var cur []op
	size := 0
	for _, o := range ops {
		if len(cur) > 0 && (len(cur)+1 >= maxOps || size+o.size() > maxBytes/2) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, o)
		size += o.size()
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// saveLarge writes a batch too big for one transaction: chunks under
// pending/<batch>/, a commit marker, then the chunks applied (see the
// package documentation).
func (db *DB) saveLarge(f Fence, ops []op) error {
	batch := id20(time.Now().UnixNano())
	parts := chunks(ops)
	for i, part := range parts {
		blob, err := json.Marshal(part)
		if err != nil {
			return fmt.Errorf("save a large batch: encode: %w", err)
		}
		if err := db.txn(f, []op{{Key: db.key("pending", batch, fmt.Sprintf("%06d", i)), Value: blob}}, "save a large batch (chunk)"); err != nil {
			return err
		}
	}
	if err := db.txn(f, []op{{Key: db.key("pending", batch, "commit"), Value: []byte(strconv.Itoa(len(parts)))}}, "save a large batch (commit)"); err != nil {
		return err
	}
	return db.applyPending(f, batch, parts)
}

// applyPending applies the chunks of a committed batch, each with the
// deletion of its pending key, then drops the commit marker.
func (db *DB) applyPending(f Fence, batch string, parts [][]op) error {
	for i, part := range parts {
		if part == nil {
			continue // applied before
		}
		all := append(slices.Clip(part), op{Key: db.key("pending", batch, fmt.Sprintf("%06d", i)), Delete: true})
		if err := db.txn(f, all, "apply a large batch"); err != nil {
			return err
		}
	}
	return db.txn(f, []op{{Key: db.key("pending", batch, "commit"), Delete: true}}, "finish a large batch")
}

// finishPending finishes the committed batches a leader left half
// applied and drops the uncommitted ones, fenced by f.
func (db *DB) finishPending(f Fence) error {
	ctx, cancel := db.ctx()
	defer cancel()
	resp, err := db.cli.Get(ctx, db.key("pending")+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return fmt.Errorf("read pending batches in %s: %w", db.Path(), err)
	}
	type pending struct {
		committed bool
		n         int
		parts     map[int][]op
		keys      []string
	}
	batches := map[string]*pending{}
	var order []string
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), db.key("pending")+"/")
		batch, part, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		p := batches[batch]
		if p == nil {
			p = &pending{parts: map[int][]op{}}
			batches[batch] = p
			order = append(order, batch)
		}
		p.keys = append(p.keys, string(kv.Key))
		if part == "commit" {
			p.committed = true
			p.n, _ = strconv.Atoi(string(kv.Value))
			continue
		}
		i, err := strconv.Atoi(part)
		if err != nil {
			continue
		}
		var ops []op
		if err := json.Unmarshal(kv.Value, &ops); err != nil {
			return fmt.Errorf("read pending batch %s in %s: %w", batch, db.Path(), err)
		}
		p.parts[i] = ops
	}
	for _, batch := range order {
		p := batches[batch]
		if !p.committed {
			var drop []op
			for _, k := range p.keys {
				drop = append(drop, op{Key: k, Delete: true})
			}
			for _, c := range chunks(drop) {
				if err := db.txn(f, c, "drop an uncommitted batch"); err != nil {
					return err
				}
			}
			continue
		}
		parts := make([][]op, p.n)
		for i := range parts {
			parts[i] = p.parts[i] // nil: applied before
		}
		if err := db.applyPending(f, batch, parts); err != nil {
			return err
		}
	}
	return nil
}

// Lead tells the store this node now leads with f: the next LoadQueue
// first finishes or drops, fenced by f, the large batches a former leader
// left half written.
func (db *DB) Lead(f Fence) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.lead = f
}

func (db *DB) get(prefix string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	db.mu.Lock()
	db.stats.Reads++
	db.mu.Unlock()
	return db.cli.Get(ctx, prefix, append([]clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, opts...)...)
}

// LoadQueue returns every job of a build that has a
// job not done or not forwarded, all cursors, and the largest job id.
func (db *DB) LoadQueue() (jobs []*messages.JobRecord, cursors []*messages.Cursor, maxID int64, err error) {
	db.mu.Lock()
	lead := db.lead
	db.mu.Unlock()
	if err := db.finishPending(lead); err != nil {
		return nil, nil, 0, err
	}
	open, err := db.get(db.key("open")+"/", clientv3.WithKeysOnly())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load the queue from %s: %w", db.Path(), err)
	}
	var builds []string
	for _, kv := range open.Kvs {
		build, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), db.key("open")+"/"), "/")
		if len(builds) == 0 || builds[len(builds)-1] != build {
			builds = append(builds, build)
		}
	}
	for _, build := range builds {
		resp, err := db.get(db.key("jobs", build) + "/")
		if err != nil {
			return nil, nil, 0, fmt.Errorf("load the queue from %s: build %s: %w", db.Path(), build, err)
		}
		for _, kv := range resp.Kvs {
			rec := &messages.JobRecord{}
			if err := proto.Unmarshal(kv.Value, rec); err != nil {
				return nil, nil, 0, fmt.Errorf("load the queue from %s: %s: %w", db.Path(), kv.Key, err)
			}
			jobs = append(jobs, rec)
		}
	}
	slices.SortFunc(jobs, func(a, b *messages.JobRecord) int { return int(a.GetJob().GetId() - b.GetJob().GetId()) })
	cur, err := db.get(db.key("cursors") + "/")
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load cursors from %s: %w", db.Path(), err)
	}
	for _, kv := range cur.Kvs {
		c := &messages.Cursor{}
		if err := proto.Unmarshal(kv.Value, c); err != nil {
			return nil, nil, 0, fmt.Errorf("load cursors from %s: %s: %w", db.Path(), kv.Key, err)
		}
		cursors = append(cursors, c)
	}
	ctx, cancel := db.ctx()
	defer cancel()
	m, err := db.cli.Get(ctx, db.key("meta", "maxid"))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load the largest job id from %s: %w", db.Path(), err)
	}
	if len(m.Kvs) > 0 {
		if maxID, err = strconv.ParseInt(string(m.Kvs[0].Value), 10, 64); err != nil {
			return nil, nil, 0, fmt.Errorf("load the largest job id from %s: %w", db.Path(), err)
		}
	}
	db.mu.Lock()
	db.maxID = maxID
	db.mu.Unlock()
	return jobs, cursors, maxID, nil
}

// LoadIncarnations returns the newest incarnation of each runner.
func (db *DB) LoadIncarnations() ([]*messages.RunnerIncarnation, error) {
	resp, err := db.get(db.key("incarnations") + "/")
	if err != nil {
		return nil, fmt.Errorf("load runner incarnations from %s: %w", db.Path(), err)
	}
	var out []*messages.RunnerIncarnation
	db.mu.Lock()
	defer db.mu.Unlock()
	db.incs = map[string]int64{}
	for _, kv := range resp.Kvs {
		runner, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), db.key("incarnations")+"/"))
		if err != nil {
			return nil, fmt.Errorf("load runner incarnations from %s: %s: %w", db.Path(), kv.Key, err)
		}
		inc, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("load runner incarnations from %s: %s: %w", db.Path(), kv.Key, err)
		}
		db.incs[runner] = inc
		out = append(out, &messages.RunnerIncarnation{RunnerId: runner, Incarnation: inc})
	}
	return out, nil
}

// commitIndex reads one commit's index: build -> index -> job key.
func (db *DB) commitIndex(repo, commit string) (map[int32]map[int32]string, int32, error) {
	resp, err := db.get(db.key("commits", esc(repo), esc(commit)) + "/")
	if err != nil {
		return nil, 0, fmt.Errorf("look up %s of %s in %s: %w", commit, repo, db.Path(), err)
	}
	out := map[int32]map[int32]string{}
	newest := int32(0)
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), db.key("commits", esc(repo), esc(commit))+"/"), "/")
		if len(parts) != 2 {
			continue
		}
		b, err1 := strconv.ParseInt(parts[0], 10, 32)
		i, err2 := strconv.ParseInt(parts[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if out[int32(b)] == nil {
			out[int32(b)] = map[int32]string{}
		}
		out[int32(b)][int32(i)] = string(kv.Value)
		newest = max(newest, int32(b))
	}
	return out, newest, nil
}

func (db *DB) job(ref string) (*messages.JobRecord, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	resp, err := db.cli.Get(ctx, db.key("jobs", ref))
	if err != nil {
		return nil, fmt.Errorf("read job %s from %s: %w", ref, db.Path(), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("job %s is indexed but missing from %s", ref, db.Path())
	}
	rec := &messages.JobRecord{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
		return nil, fmt.Errorf("read job %s from %s: %w", ref, db.Path(), err)
	}
	return rec, nil
}

// ArchivedJobs maps each commit already built
// maps to the record of the first job of its newest build.
func (db *DB) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	out := map[string]*messages.JobRecord{}
	for _, c := range commits {
		idx, newest, err := db.commitIndex(repo, c)
		if err != nil {
			return nil, err
		}
		if len(idx) == 0 {
			continue
		}
		jobs := idx[newest]
		first := int32(-1)
		for i := range jobs {
			if first < 0 || i < first {
				first = i
			}
		}
		rec, err := db.job(jobs[first])
		if err != nil {
			return nil, err
		}
		out[c] = rec
	}
	return out, nil
}

// NewestBuild returns the jobs of the newest build
// of a commit in index order, none if it was never built.
func (db *DB) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	if messages.ValidateCommit(commit) != nil {
		return nil, nil
	}
	idx, newest, err := db.commitIndex(repo, commit)
	if err != nil || len(idx) == 0 {
		return nil, err
	}
	var order []int32
	for i := range idx[newest] {
		order = append(order, i)
	}
	slices.Sort(order)
	out := make([]*messages.Job, 0, len(order))
	for _, i := range order {
		rec, err := db.job(idx[newest][i])
		if err != nil {
			return nil, err
		}
		out = append(out, rec.GetJob())
	}
	return out, nil
}

// Secrets, sealed as the SQLite store seals them (store.SecretKey.Seal):
// etcd holds their bindings and ciphertexts; the key stays in each node's
// credentials directory. Writes are fenced like the queue's.

func (db *DB) secretKey(name, repo string) string { return db.key("secrets", esc(name), esc(repo)) }

// PutSecret stores a sealed secret, replacing any of its name and repository.
func (db *DB) PutSecret(s store.SealedSecret, f Fence) error {
	blob, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("set secret %s: %w", s.Name, err)
	}
	return db.txn(f, []op{{Key: db.secretKey(s.Name, s.Repo), Value: blob}}, "set secret "+s.Name)
}

// DeleteSecret removes the secret name of repo; found is false when there was none.
func (db *DB) DeleteSecret(name, repo string, f Fence) (bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	k := db.secretKey(name, repo)
	resp, err := db.cli.Txn(ctx).If(fence(f)...).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return false, fmt.Errorf("delete secret %s in %s: %w", name, db.Path(), err)
	}
	if !resp.Succeeded {
		return false, fmt.Errorf("delete secret %s: %w", name, ErrFenced)
	}
	return resp.Responses[0].GetResponseDeleteRange().Deleted > 0, nil
}

// Secrets returns the stored secrets of the given names, of every
// repository, sorted by name and repository; ListSecrets (names nil) all.
func (db *DB) Secrets(names []string) ([]store.SealedSecret, error) {
	resp, err := db.get(db.key("secrets") + "/")
	if err != nil {
		return nil, fmt.Errorf("read secrets from %s: %w", db.Path(), err)
	}
	var out []store.SealedSecret
	for _, kv := range resp.Kvs {
		var s store.SealedSecret
		if err := json.Unmarshal(kv.Value, &s); err != nil {
			return nil, fmt.Errorf("read secret %s from %s: %w", kv.Key, db.Path(), err)
		}
		if names == nil || slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b store.SealedSecret) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Repo, b.Repo)
	})
	return out, nil
}

// Revocations are the revoked identities ("role/name" or a bare name)
// every node of a failover group enforces: any node adds those of its
// credentials directory (`volt ca revoke` on it), and every node learns
// the others'. Entries are only ever added.
func (db *DB) Revocations() ([]string, error) {
	resp, err := db.get(db.key("revoked")+"/", clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read the revocation list from %s: %w", db.Path(), err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if e, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), db.key("revoked")+"/")); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Revoke adds entry to the revocation list.
func (db *DB) Revoke(entry string) error {
	return db.txn(Fence{}, []op{{Key: db.key("revoked", esc(entry)), Value: []byte{}}}, "revoke "+entry)
}
