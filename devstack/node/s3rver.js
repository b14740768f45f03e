// Runs s3rver (a Node S3 server, pinned in package.json) on loopback with the
// stack's credentials: its CLI knows only the key pair S3RVER/S3RVER and it
// refuses access key ids it does not know (it does not check signatures
// for real; versitygw, the default S3 server, does).
// Usage: node s3rver.js PORT DIRECTORY ACCESS_KEY_ID SECRET_ACCESS_KEY
'use strict';
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

const [port, directory, accessKeyId, secretAccessKey] = process.argv.slice(2);
if (!port || !directory || !accessKeyId || !secretAccessKey) {
  console.error('usage: node s3rver.js PORT DIRECTORY ACCESS_KEY_ID SECRET_ACCESS_KEY');
  process.exit(2);
}
DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, vhostBuckets: false })
  .run()
  .then(({ address, port: p }) => console.log(`s3rver listening on ${address}:${p}`))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
