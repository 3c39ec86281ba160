// Preloaded into Omniboard with `node --require` (through NODE_OPTIONS) by blowtorch_mongo/omniboard.py.
//
// Omniboard 2.16.1 calls `app.listen(PORT, cb)`: that binds every interface, and on EADDRINUSE it
// silently retries PORT+1. A dev/test dashboard should be reachable from this machine only, and a
// busy port must be an error, not a dashboard on some other port. So: add the host to the plain
// `listen(port[, cb])` call, and exit with status 98 if the port is taken.
'use strict';
const net = require('net');

const host = process.env.OMNIBOARD_LISTEN_HOST || '127.0.0.1';
const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const isPort = typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]));
  if (isPort && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, host);
    // Registered before Omniboard's own 'error' handler (which would try PORT+1), so it runs first.
    this.once('error', (err) => {
      if (err.code === 'EADDRINUSE') {
        console.error(`omniboard_loopback: ${host}:${args[0]} is already in use`);
        process.exit(98);
      }
    });
  }
  return originalListen.apply(this, args);
};
