// Parse Server with its LiveQuery WebSocket server on one loopback port, for livequery-harness.
//
// Started by harness/orchestration/parse_process.py with everything it needs in the environment:
// LQH_PARSE_PORT, LQH_PARSE_DATABASE_URI, LQH_PARSE_APP_ID, LQH_PARSE_MASTER_KEY and
// LQH_PARSE_LIVE_CLASSES (comma-separated class-name patterns that publish live events).
// It binds 127.0.0.1 only and exits non-zero, with one line on stderr, when it cannot start.
'use strict';

const http = require('http');
const express = require('express');
const { ParseServer } = require('parse-server');

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is not set`);
  }
  return value;
}

async function main() {
  const host = '127.0.0.1';
  const port = Number(required('LQH_PARSE_PORT'));
  const appId = required('LQH_PARSE_APP_ID');
  const masterKey = required('LQH_PARSE_MASTER_KEY');
  const serverURL = `http://${host}:${port}/parse`;
  const api = new ParseServer({
    databaseURI: required('LQH_PARSE_DATABASE_URI'),
    appId,
    masterKey,
    masterKeyIps: ['127.0.0.1', '::1'],
    serverURL,
    allowCustomObjectId: true, // the harness chooses every row's key, as it does on every target
    liveQuery: { classNames: required('LQH_PARSE_LIVE_CLASSES').split(',') },
    logLevel: process.env.LQH_PARSE_LOG_LEVEL || 'warn',
  });
  await api.start();
  const app = express();
  app.use('/parse', api.app);
  const httpServer = http.createServer(app);
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, resolve);
  });
  await ParseServer.createLiveQueryServer(httpServer, { appId, masterKey, serverURL });
  const stop = () => httpServer.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log(`parse-server listening on ${serverURL}`);
}

main().catch(err => {
  console.error(`parse-server failed to start: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
