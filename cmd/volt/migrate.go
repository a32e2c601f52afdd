package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

func newMigrateCommand() *cobra.Command {
	var (
		c       common
		ef      etcdFlags
		dataDir string
		toEtcd  bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move a single dispatcher's queue from SQLite into etcd, for a failover group",
		Long: `Copies what a single dispatcher keeps in --data-dir (SQLite) into etcd, where the
nodes of a failover group (volt dispatcher --etcd) keep it: every job record (the queue
and the index of builds), the observers' cursors, the runners' newest incarnations, the
largest job id and the secrets, still sealed: give every node the same secrets key file
(secrets.key in the credentials directory). Stop the dispatcher first: its data directory
must not be in use. It refuses an etcd that already holds a Volt queue under --etcd-prefix
unless --force; running it twice copies the same records again.`,
		Example: `  volt migrate --to-etcd --data-dir .volt --etcd 127.0.0.1:2379,127.0.0.1:2381,127.0.0.1:2383`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(c.logLevel)
			if err != nil {
				return err
			}
			if !toEtcd {
				return usageErr("say where to: --to-etcd (the only destination there is)")
			}
			if ef.endpoints == "" {
				return usageErr("--etcd HOST:2379[,HOST:2379…] is needed")
			}
			db, closeStore, err := openLockedStore(dataDir, "volt migrate", cluster.DispatcherName, logger)
			if err != nil {
				return err
			}
			defer closeStore()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			et, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: ef.endpointList(), CA: ef.ca, Cert: ef.cert, Key: ef.key, Prefix: ef.prefix})
			if err != nil {
				return startErr("migrate", err)
			}
			defer et.Close()
			_, _, maxID, err := et.LoadQueue()
			if err != nil {
				return fatal("read etcd", err)
			}
			if maxID > 0 && !force {
				return usageErr("etcd already holds a Volt queue under %s (job ids up to %d): pass another --etcd-prefix, or --force to copy over it", et.Prefix(), maxID)
			}
			n, err := migrateToEtcd(db, et)
			if err != nil {
				return fatal("migrate", err)
			}
			fmt.Printf("copied %d job records, the cursors, the runner incarnations and the secrets from %s to etcd %s\n", n, dataDir, et.Prefix())
			return nil
		},
	}
	c.register(cmd.Flags())
	ef.register(cmd)
	cmd.Flags().StringVar(&dataDir, "data-dir", ".volt", "the single dispatcher's data directory (SQLite)")
	cmd.Flags().BoolVar(&toEtcd, "to-etcd", false, "copy into etcd (--etcd …)")
	cmd.Flags().BoolVar(&force, "force", false, "copy even when etcd already holds a Volt queue under the prefix")
	for _, hidden := range []string{"election-ttl", "failover-grace"} {
		_ = cmd.Flags().MarkHidden(hidden)
	}
	return cmd
}

// migrateToEtcd copies db's job records, cursors and runner incarnations
// into et, a page of jobs per batch (each batch idempotent: records are
// put by id), and the secrets still sealed (every node needs the same
// secrets key file), and returns how many job records it copied.
func migrateToEtcd(db *store.DB, et *etcdstore.DB) (int, error) {
	_, cursors, _, err := db.LoadQueue()
	if err != nil {
		return 0, err
	}
	incs, err := db.LoadIncarnations()
	if err != nil {
		return 0, err
	}
	n := 0
	for after := int64(0); ; {
		jobs, err := db.JobsAfter(after, 30)
		if err != nil {
			return n, err
		}
		if len(jobs) == 0 {
			break
		}
		if err := et.Save(etcdstore.Batch{Jobs: jobs}); err != nil {
			return n, err
		}
		n += len(jobs)
		after = jobs[len(jobs)-1].GetJob().GetId()
	}
	if err := et.Save(etcdstore.Batch{Cursors: cursors, Incarnations: incs}); err != nil {
		return n, err
	}
	secrets, err := db.ListSecrets()
	if err != nil {
		return n, err
	}
	for _, s := range secrets {
		if err := et.PutSecret(s.Sealed(), etcdstore.Fence{}); err != nil {
			return n, err
		}
	}
	return n, nil
}
