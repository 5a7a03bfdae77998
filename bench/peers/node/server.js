// Peer (b) of the fan-out benchmark: a minimal Node.js `ws` server that, like
// the system tickwire replaces, JSON-encodes each message once per client and
// sends it. Same fake upstream schedule and the same stdin/stdout control
// protocol as bench/servers.py (see bench/feed.py).
'use strict';
const { WebSocketServer } = require('ws');
const readline = require('readline');
const { performance } = require('perf_hooks');

const subs = new Map(); // channel -> Set<ws>
const seqs = new Map();
let kind = 'trade';
let rate = 0;
let channels = 1;
let published = 0;
let done = 0;
let t0 = performance.now();
let wall0 = nowUs0();

function nowUs0() { return Math.floor((performance.timeOrigin + performance.now()) * 1000); }
const nowUs = () => Math.floor((performance.timeOrigin + performance.now()) * 1000);
const symbol = (i) => 'S' + String(i).padStart(3, '0') + 'USDT';

function message(index, seq, us) {
  const sym = symbol(index);
  if (kind === 'trade') {
    return { type: 'trade', channel: 'trades:' + sym, symbol: sym, seq,
      data: { id: us, price: 97523.45, quantity: 0.015, side: 'buy', timestamp: Math.floor(us / 1000) } };
  }
  return { type: 'price', channel: 'price:' + sym, symbol: sym, seq,
    data: { price: 97523.45, change24h: 2345.67, changePercent24h: 2.47, high24h: 98000.0,
      low24h: 95000.0, volume24h: 12345.678, timestamp: Math.floor(us / 1000) } };
}

function emit(index, us) {
  const seq = (seqs.get(index) || 0) + 1;
  seqs.set(index, seq);
  const msg = message(index, seq, us);
  const targets = subs.get(msg.channel);
  if (!targets) return;
  for (const ws of targets) {
    if (ws.readyState === 1) ws.send(JSON.stringify(msg)); // encoded per client
  }
}

// event time = when the message was due (scheduled), or now for a burst
function send(n, scheduled) {
  const step = rate > 0 ? 1e6 / rate : 0;
  for (let k = 0; k < n; k++) {
    const i = published++;
    const us = scheduled ? wall0 + Math.floor((done + 1) * step) : nowUs(); // message d is due at (d+1)/rate
    done++;
    emit(i % channels, us);
  }
}

function tick() {
  if (rate > 0) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate) - done;
    if (due > 0) send(Math.min(due, Math.max(100, Math.floor(rate * 0.05))), true); // at most 50 ms of schedule per tick, as bench/feed.py
  }
  setTimeout(tick, 1);
}

async function burst(n, ms) {
  const start = nowUs();
  const perTick = Math.max(1, Math.floor(n / Math.max(1, ms)));
  let left = n;
  while (left > 0) {
    const k = Math.min(perTick, left);
    send(k, false);
    left -= k;
    if (left) await new Promise((r) => setTimeout(r, 1));
  }
  return start;
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, backlog: 4096 });
wss.on('connection', (ws) => {
  const mine = [];
  ws.on('message', (raw) => {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    if (msg.type === 'subscribe') {
      for (const ch of msg.channels) {
        if (!subs.has(ch)) subs.set(ch, new Set());
        subs.get(ch).add(ws);
        mine.push(ch);
        ws.send(JSON.stringify({ type: 'subscribed', channel: ch }));
      }
    }
  });
  ws.on('close', () => { for (const ch of mine) subs.get(ch).delete(ws); });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n');
  setTimeout(tick, 1);
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = JSON.parse(line);
  const reply = { ok: true };
  if (cmd.cmd === 'feed') {
    kind = cmd.kind || 'trade';
    rate = cmd.rate; channels = Math.max(1, cmd.channels); t0 = performance.now(); wall0 = nowUs(); done = 0;
  } else if (cmd.cmd === 'burst') {
    kind = cmd.kind || 'price';
    rate = 0; channels = Math.max(1, cmd.channels || 1);
    reply.start_us = await burst(cmd.n, cmd.ms);
  } else if (cmd.cmd === 'stats') {
    reply.published = published;
    reply.connections = wss.clients.size;
  } else if (cmd.cmd === 'quit') {
    process.exit(0);
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
rl.on('close', () => process.exit(0));
