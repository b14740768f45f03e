// Preloaded with `node -r ./loopback.js` for servers that bind 0.0.0.0 with no
// option to change it (kinesis-local, kinesalite, fauxqs): every listen() is
// forced onto 127.0.0.1 so a developer's stack is never reachable from the network.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const port = Number(args[0]);
    const rest = args.slice(1).filter((a) => typeof a !== 'string');
    args = [port, '127.0.0.1', ...rest];
  }
  return listen.apply(this, args);
};
