// Package coordstate reads and writes Java KCL 3.x's coordinator items in
// DynamoDB exactly as Java does, so that Go workers and Java workers can run
// one application together: worker metrics (WorkerMetricStats), the leader
// lock ("Leader"), the client-version migration state ("Migration3.0"), and
// the LeaseOwnerToLeaseKeyIndex through which workers find their leases.
//
// Java 3.0–3.4 keep the coordinator items in two extra tables,
// <app>-CoordinatorState and <app>-WorkerMetricStats; 3.5 keeps them all in
// the lease table, told apart by entityType. Layout says which; DetectLayout
// decides as a starting Java 3.5 worker does. This package does not take
// part in 3.5's move from the three tables to one (a 3.5 leader waits for
// every worker to report support for it, which Go workers do not).
//
// # DynamoDB calls per minute at the defaults
//
// Users pay per request, so here is what each piece costs when driven at
// Java's default rhythm (the caller drives it; nothing here runs on its own):
//
//   - Metrics.Put: one UpdateItem per call; at DefaultMetricsReportInterval
//     (30 s) that is 2 writes per minute per worker.
//   - Metrics.List: one Scan page per 1 MB of table per call; the leader
//     calls it every assignment round (Java: every 20 s), 3 scans per minute.
//     In the single-table layout each scan reads (and bills) every lease as
//     well; MetricsFromItem lets a leader that scans the lease table anyway
//     split that one scan instead.
//   - Metrics.DeleteStale: one DeleteItem per worker silent for a day.
//   - Leader.IsLeader: at most one call per DefaultLeaderHeartbeat (30 s)
//     however often it is asked: the holder makes 2 UpdateItems per minute,
//     every other worker 2 consistent GetItems per minute, plus one PutItem
//     when it acquires.
//   - Leader.Release: one DeleteItem.
//   - GetMigration: one consistent GetItem (two in the three-table layout
//     while the item does not exist yet); Java workers in the versions that
//     can roll back poll it once a minute.
//   - CreateMigration: one PutItem; TransitionMigration: one GetItem and one
//     UpdateItem; both only on version changes.
//   - LeaseKeysOwnedBy: one Query page per call (KEYS_ONLY, so only the
//     owner's keys are read); Java workers discover every ~10 s, 6 queries
//     per minute per worker. Without a usable index it falls back to a full
//     Scan per call.
//   - DetectLayout: one DescribeTable and at most one GetItem, at startup.
//   - Layout.Ensure, EnsureLeaseOwnerIndex: DescribeTable (a free
//     control-plane call) at most once per second while waiting, and a
//     CreateTable or UpdateTable when something is missing, at startup.
//
// # Local test server (dynalite 4.0) gaps
//
// dynalite cannot add an index to an existing table: it rejects
// GlobalSecondaryIndexUpdates.Create without ProvisionedThroughput (which
// DynamoDB forbids on a PAY_PER_REQUEST table, so Java sends none), and
// with one it accepts the UpdateTable but never creates the index (real
// DynamoDB lists a new index as CREATING in its answer).
// EnsureLeaseOwnerIndex recognises both and returns ErrIndexNotCreated
// rather than failing obscurely or waiting forever, and
// LeaseKeysOwnedBy falls back to a filtered Scan when the index cannot be
// queried. Query on a KEYS_ONLY index works in dynalite when the index was
// declared at CreateTable, which is how the tests exercise the Query path.
package coordstate
