// Aggregates user records with AWS Labs' aws-kinesis-agg (the KPL record
// format encoder), so the Go deaggregator is tested against the producer
// side it must interoperate with.
//
// stdin:  JSON array of chunks; each chunk is an array of
//         {partitionKey, explicitHashKey?, data (base64)}.
// stdout: one JSON line per aggregated Kinesis record:
//         {partitionKey, explicitHashKey?, data (base64)}.
// Resolve the package through NODE_PATH (devstack/node/node_modules).
'use strict';
const agg = require('aws-kinesis-agg');

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const chunks = JSON.parse(input);
  for (const chunk of chunks) {
    const records = chunk.map((r) => {
      const rec = { partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') };
      if (r.explicitHashKey) rec.explicitHashKey = r.explicitHashKey;
      return rec;
    });
    await new Promise((resolve, reject) => {
      agg.aggregate(records, (encoded, done) => {
        const out = { partitionKey: encoded.partitionKey, data: encoded.data.toString('base64') };
        if (encoded.ExplicitHashKey) out.explicitHashKey = encoded.ExplicitHashKey;
        process.stdout.write(JSON.stringify(out) + '\n');
        done();
      }, resolve, (err) => reject(err));
    });
  }
});
