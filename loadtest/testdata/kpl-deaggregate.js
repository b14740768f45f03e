// Deaggregates Kinesis records with AWS Labs' aws-kinesis-agg, an
// implementation independent of ours, to check that the load generator's KPL
// aggregates are what real KPL consumers read.
//
// stdin:  JSON array of {partitionKey, data (base64)} Kinesis records.
// stdout: JSON array of {partitionKey, data (base64)} user records.
// Resolve the package through NODE_PATH (devstack/node/node_modules).
'use strict';
const agg = require('aws-kinesis-agg');

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = [];
  for (const r of JSON.parse(input)) {
    const rec = { partitionKey: r.partitionKey, data: r.data, sequenceNumber: '1', approximateArrivalTimestamp: 0, kinesisSchemaVersion: '1.0' };
    agg.deaggregateSync(rec, true, (err, users) => {
      if (err) { console.error(err); process.exit(1); }
      for (const u of users) out.push({ partitionKey: u.partitionKey, data: u.data });
    });
  }
  process.stdout.write(JSON.stringify(out));
});
