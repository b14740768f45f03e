// Runs one SQL query with DuckDB (npm @duckdb/node-api) and prints the rows
// as a JSON array. The sinks tests use it as an independent Parquet reader:
// what an analyst's tool makes of the files the S3 sink writes.
//
// usage: NODE_PATH=devstack/node/node_modules node duckdb-query.js "<sql>"
const { DuckDBInstance } = require('@duckdb/node-api');

(async () => {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const reader = await conn.runAndReadAll(process.argv[2]);
  process.stdout.write(JSON.stringify(reader.getRowObjectsJson()));
})().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
