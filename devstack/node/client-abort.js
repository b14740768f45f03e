// Preloaded with `node -r ./client-abort.js` for dynalite and kinesalite
// (the same request handling), whose request handler rethrows a request
// stream's error (`req.on('error', function (err)
// { throw err })`): a client that drops its connection before its request
// body is complete (a cancelled call, a fault-injection proxy resetting the
// connection) would otherwise kill the whole server. Such an abort concerns
// that one request only; every other uncaught error still ends the process.
'use strict';
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'ECONNABORTED' || err.message === 'aborted')) {
    return;
  }
  console.error(err);
  process.exit(1);
});
