// Independent LwM2M client for the interoperability tests: npm lwm2m-node-lib (Telefonica's
// FIWARE LwM2M library, client side), installed by scripts/test into
// tests/tests/peers/lwm2m_client/node_modules.
//
// Environment: HOST, PORT (the LwM2M server), EP (endpoint name), LIFETIME (seconds,
// default 300). Registers EP with objects /1/0, /3/0 and /3303/0 and prints one line per
// event on stdout:
//   registered <location>          after the server's 2.01
//   request <op> /<o>/<i>/<r> [<value>]   when a read, write or execute arrives
//   error <message>                the registration failed (exit 1)
// On SIGTERM or SIGINT it de-registers, prints `deregistered`, and exits.

'use strict';

const path = require('path');
const lib = require(path.join(__dirname, 'lwm2m_client', 'node_modules', 'lwm2m-node-lib')).client;

const host = process.env.HOST || '127.0.0.1';
const port = parseInt(process.env.PORT || '5783', 10);
const ep = process.env.EP || 'node-client';
const lifetime = process.env.LIFETIME || '300';

lib.init({
  logLevel: 'FATAL',
  client: {
    lifetime: lifetime,
    version: '1.0',
    logLevel: 'FATAL',
    observe: { period: 3000 },
    ipProtocol: 'udp4',
    serverProtocol: 'udp4',
    formats: [{ name: 'lightweightm2m/text', value: 1541 }],
    writeFormat: 'lightweightm2m/text',
  },
});

const resources = {
  '/1/0': { 0: 1, 1: parseInt(lifetime, 10), 7: 'U' },
  '/3/0': { 0: 'Telefonica lwm2m-node-lib', 1: 'peer', 2: ep, 3: '1.4.0', 9: 100 },
  '/3303/0': { 5700: 21.5, 5701: 'Cel', 5601: 20.0, 5602: 23.0 },
};

function say(line) {
  process.stdout.write(line + '\n');
}

function populate(uris, done) {
  if (uris.length === 0) {
    return done();
  }
  const uri = uris[0];
  lib.registry.create(uri, (err) => {
    if (err) {
      return done(err);
    }
    const ids = Object.keys(resources[uri]);
    (function next(i) {
      if (i === ids.length) {
        return populate(uris.slice(1), done);
      }
      lib.registry.setResource(uri, ids[i], resources[uri][ids[i]], (e) => (e ? done(e) : next(i + 1)));
    })(0);
  });
}

function handler(op) {
  return (objectType, objectId, resourceId, value, callback) => {
    const shown = value === undefined || value === null || value === '' || typeof value === 'function' ? '' : ' ' + value;
    say(`request ${op} /${objectType}/${objectId}/${resourceId}${shown}`);
    const cb = typeof value === 'function' ? value : callback;
    cb(null);
  };
}

populate(Object.keys(resources), (err) => {
  if (err) {
    say('error ' + err);
    process.exit(1);
  }
  lib.register(host, port, '', ep, (error, device) => {
    if (error) {
      say('error ' + (error.message || error.name || error));
      process.exit(1);
    }
    say('registered ' + device.location);
    for (const op of ['read', 'write', 'execute']) {
      lib.setHandler(device.serverInfo, op, handler(op));
    }
    const leave = () => {
      const bail = setTimeout(() => process.exit(0), 3000);
      lib.unregister(device, () => {
        clearTimeout(bail);
        say('deregistered');
        process.exit(0);
      });
    };
    process.on('SIGTERM', leave);
    process.on('SIGINT', leave);
  });
});
