package consumer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/streamscore/streamscore/consumer/coordstate"
	"github.com/streamscore/streamscore/internal/retry"
)

// Migration between Java KCL 2.x's way and 3.x's, as Java KCL 3.x does it,
// with the client version of the application recorded in its Migration3.0
// item:
//
//   - CLIENT_VERSION_UPGRADE_FROM_2X: workers take and steal as in 2.x,
//     and also report their metrics. One worker watches whether every
//     lease owner reports them; once that has held for MigrationReadyTime
//     it moves the application to
//   - CLIENT_VERSION_3X_WITH_ROLLBACK: the 3.x leader assigns. A worker
//     configured for 3.x that starts then finishes the migration:
//   - CLIENT_VERSION_3X: no way back.
//   - CLIENT_VERSION_2X: rolled back (RollBackTo2X): 2.x alone again,
//     until RollForward moves it back to UPGRADE_FROM_2X.
//
// Every worker reads the item each MigrationPollInterval and switches when
// it changes. The shards it processes keep running across a switch: only
// the loops that decide who holds what are replaced, and every lease write
// stays conditional, so workers that switch a poll apart never lose or
// duplicate a lease between them. A worker still running only 2.x (a Java
// 2.x worker, or ours with ClientVersion2X) reports no metrics, so the
// migration waits until it is gone, as Java's does.

// DefaultMigrationPollInterval and DefaultMigrationReadyTime are
// KCL3Config's defaults (Java's ClientVersionChangeMonitor period and the
// 10 minutes its MigrationReadyMonitor must see the fleet ready).
const (
	DefaultMigrationPollInterval = time.Minute
	DefaultMigrationReadyTime    = 10 * time.Minute
)

// startingVersion is the client version this worker starts in: the
// recorded one, or the one its configuration starts a new application in
// (Java's MigrationClientVersionStateInitializer).
func (c *Consumer) startingVersion(ctx context.Context, layout coordstate.Layout) (string, error) {
	start := coordstate.ClientVersionUpgradeFrom2X
	if c.cfg.ClientVersion == ClientVersion3X {
		start = coordstate.ClientVersion3X
	}
	for range 3 {
		cur, ok, err := coordstate.GetMigration(ctx, c.ddb, layout)
		if err != nil {
			return "", err
		}
		switch {
		case !ok:
			created, err := coordstate.CreateMigration(ctx, c.ddb, layout, coordstate.InitialMigration(start, c.cfg.WorkerID, time.Now()))
			if err != nil {
				return "", err
			}
			if created {
				return start, nil
			}
		case cur.ClientVersion == coordstate.ClientVersion3XWithRollback && c.cfg.ClientVersion == ClientVersion3X:
			// A worker configured for 3.x finishes the migration.
			moved, err := coordstate.TransitionMigration(ctx, c.ddb, layout, cur.ClientVersion,
				coordstate.MigrationState{ClientVersion: coordstate.ClientVersion3X, ModifiedBy: c.cfg.WorkerID})
			if err != nil {
				return "", err
			}
			if moved {
				return coordstate.ClientVersion3X, nil
			}
		case cur.ClientVersion == coordstate.ClientVersionInit:
			return "", fmt.Errorf("consumer: migration state of %s is %s, which no running worker writes; delete the %s item or set it to %s", c.cfg.LeaseTable, cur.ClientVersion, coordstate.MigrationKey, coordstate.ClientVersionUpgradeFrom2X)
		default:
			// The recorded state wins over the configuration, as in Java: a
			// 3.x-configured worker joining a migration follows it.
			return cur.ClientVersion, nil
		}
	}
	return "", fmt.Errorf("consumer: migration state of %s kept changing while it was being read", c.cfg.LeaseTable)
}

// coordinate runs the loops that decide who holds which lease for the
// application's client version, and switches them when the version
// changes.
func (c *Consumer) coordinate(ctx context.Context, v string) {
	for {
		c.setVersion(v)
		loops, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		switch v {
		case coordstate.ClientVersionUpgradeFrom2X:
			wg.Go(func() { c.takeLoop(loops) })
			wg.Go(func() { c.reportLoop(loops) })
			wg.Go(func() { c.readyLoop(loops) })
		case coordstate.ClientVersion2X:
			wg.Go(func() { c.takeLoop(loops) })
		default: // 3X_WITH_ROLLBACK, 3X
			wg.Go(func() { c.reportLoop(loops) })
			wg.Go(func() { c.discoverLoop(loops) })
			wg.Go(func() { c.leaderLoop(loops) })
		}
		next := v
		if v == coordstate.ClientVersion3X {
			<-ctx.Done()
		} else {
			next = c.watchVersion(ctx, v)
		}
		stop()
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		c.log.Info("client version changed: switching how leases are shared", "from", v, "to", next)
		v = next
	}
}

func (c *Consumer) setVersion(v string) {
	for _, known := range []string{coordstate.ClientVersionUpgradeFrom2X, coordstate.ClientVersion2X, coordstate.ClientVersion3XWithRollback, coordstate.ClientVersion3X} {
		val := 0.0
		if known == v {
			val = 1
		}
		c.m.clientVersion.WithLabelValues(known).Set(val)
	}
}

// watchVersion reads the migration state every MigrationPollInterval and
// returns the new client version when it differs from v (or when ctx
// ends). An unreadable state keeps v: the loops running are safe either
// way, and the next poll tries again.
func (c *Consumer) watchVersion(ctx context.Context, v string) string {
	for retry.Sleep(ctx, c.cfg.KCL3.MigrationPollInterval) {
		cur, ok, err := coordstate.GetMigration(ctx, c.ddb, c.k3.layout)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.log.Warn("reading the migration state failed", "err", err)
			}
		case ok && cur.ClientVersion != v && cur.ClientVersion != coordstate.ClientVersionInit:
			return cur.ClientVersion
		}
	}
	return v
}

// readyLoop is Java's MigrationReadyMonitor: on one worker (the first of
// the lease owners by id), it checks each MigrationPollInterval that the
// lease-owner index is active and that every lease owner has reported its
// metrics within two report intervals; once that has held for
// MigrationReadyTime it moves the application to 3X_WITH_ROLLBACK.
func (c *Consumer) readyLoop(ctx context.Context) {
	var since time.Time
	for retry.Sleep(ctx, c.cfg.KCL3.MigrationPollInterval) {
		ready, watcher, err := c.fleetReady(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("checking whether the fleet is ready for 3.x failed", "err", err)
			}
			continue
		}
		if !watcher {
			since = time.Time{}
			continue
		}
		if !ready {
			if !since.IsZero() {
				c.log.Info("fleet no longer ready for 3.x: a lease owner reports no metrics or the index is not active")
			}
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
			c.log.Info("fleet ready for 3.x; moving once that has held", "for", c.cfg.KCL3.MigrationReadyTime)
		}
		if time.Since(since) < c.cfg.KCL3.MigrationReadyTime {
			continue
		}
		moved, err := coordstate.TransitionMigration(ctx, c.ddb, c.k3.layout, coordstate.ClientVersionUpgradeFrom2X,
			coordstate.MigrationState{ClientVersion: coordstate.ClientVersion3XWithRollback, ModifiedBy: c.cfg.WorkerID})
		if err != nil {
			c.log.Warn("moving the application to 3.x failed", "err", err)
			continue
		}
		if moved {
			c.log.Info("application moved to 3.x with rollback", "state", coordstate.ClientVersion3XWithRollback)
		}
		return
	}
}

// fleetReady reports whether every lease owner reports metrics and the
// index is active, and whether this worker is the one that watches
// (Java elects it from the lease owners too, by a seeded shuffle; any
// worker may write the move, which is conditional on the version).
func (c *Consumer) fleetReady(ctx context.Context) (ready, watcher bool, err error) {
	leases, err := c.table.list(ctx)
	if err != nil {
		return false, false, err
	}
	var owners []string
	for i := range leases {
		if o := leases[i].owner; o != "" && !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
	}
	slices.Sort(owners)
	if len(owners) == 0 || owners[0] != c.cfg.WorkerID {
		return false, false, nil
	}
	active, err := coordstate.LeaseOwnerIndexActive(ctx, c.ddb, c.cfg.LeaseTable)
	if err != nil || !active {
		return false, true, err
	}
	stats, err := c.k3.metrics.List(ctx)
	if err != nil && len(stats) == 0 {
		return false, true, err
	}
	now := time.Now()
	reporting := map[string]bool{}
	for _, s := range stats {
		if c.reporting(s, now) {
			reporting[s.WorkerID] = true
		}
	}
	for _, o := range owners {
		if !reporting[o] {
			return false, true, nil
		}
	}
	return true, true, nil
}

// RollBackTo2X moves an application in migration (UPGRADE_FROM_2X or
// 3X_WITH_ROLLBACK) back to 2.x, as Java KCL's migration script does:
// every worker returns to taking and stealing at its next poll of the
// state. by names who did it in the state's history. The lease-owner
// index is left in place; it costs nothing while unused. A table already
// at CLIENT_VERSION_3X cannot go back.
func RollBackTo2X(ctx context.Context, db DynamoDBAPI, app, leaseTable, by string) error {
	return moveVersion(ctx, db, app, leaseTable, by, coordstate.ClientVersion2X,
		coordstate.ClientVersionUpgradeFrom2X, coordstate.ClientVersion3XWithRollback)
}

// RollForward moves a rolled-back application (CLIENT_VERSION_2X) back to
// UPGRADE_FROM_2X, from where it moves to 3.x once ready.
func RollForward(ctx context.Context, db DynamoDBAPI, app, leaseTable, by string) error {
	return moveVersion(ctx, db, app, leaseTable, by, coordstate.ClientVersionUpgradeFrom2X, coordstate.ClientVersion2X)
}

// MigrationStatus reads the application's migration state; ok is false
// when it has none (its workers run ClientVersion2X). leaseTable "" is the
// application's name, as Config.LeaseTable.
func MigrationStatus(ctx context.Context, db DynamoDBAPI, app, leaseTable string) (s coordstate.MigrationState, ok bool, err error) {
	layout, err := coordstate.DetectLayout(ctx, db, app, leaseTableOf(app, leaseTable))
	if err != nil {
		return s, false, err
	}
	return coordstate.GetMigration(ctx, db, layout)
}

// leaseTableOf is the lease table's name: the application's unless one
// is given (Java KCL's rule).
func leaseTableOf(app, table string) string {
	if table == "" {
		return app
	}
	return table
}

func moveVersion(ctx context.Context, db DynamoDBAPI, app, leaseTable, by, to string, from ...string) error {
	leaseTable = leaseTableOf(app, leaseTable)
	layout, err := coordstate.DetectLayout(ctx, db, app, leaseTable)
	if err != nil {
		return err
	}
	cur, ok, err := coordstate.GetMigration(ctx, db, layout)
	if err != nil {
		return err
	}
	if !ok || !slices.Contains(from, cur.ClientVersion) {
		state := "no migration state"
		if ok {
			state = "client version " + cur.ClientVersion
		}
		return fmt.Errorf("consumer: %s has %s; moving to %s needs one of %v", leaseTable, state, to, from)
	}
	moved, err := coordstate.TransitionMigration(ctx, db, layout, cur.ClientVersion, coordstate.MigrationState{ClientVersion: to, ModifiedBy: by})
	if err != nil {
		return err
	}
	if !moved {
		return fmt.Errorf("consumer: the migration state of %s changed while being moved to %s; read it and try again", leaseTable, to)
	}
	return nil
}
