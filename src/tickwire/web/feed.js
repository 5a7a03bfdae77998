// The gateway connection of the dashboard: one WebSocket, kept alive.
//
// It reconnects by itself with a capped, jittered back-off, subscribes again
// to every remembered channel after a reconnect, follows the close codes of
// docs/protocol.md, and checks `seq` per channel (a jump is reported as a gap; a
// snapshot resets the expectation). The page gets plain objects through
// callbacks; this module never touches the DOM.
//
// Channels are remembered by their canonical name only, the one the
// `subscribed` ack carries: a name as typed (`price:btcusdt`) waits in
// `pending` until it is sent, then in `inflight` until its subscribe is
// answered, and is never stored. A JSON `ping` every `pingEvery` ms gives the
// round-trip time; `channelStats` counts messages, seq gaps and the time of
// the last message per channel.
//
// A subscribe may carry a `tag` (any value; the page says who asked): the
// `subscribed` and `error` replies to it are handed to `onMessage(msg, tag)`,
// so the page learns the canonical name of what it asked for. The feed itself
// gives tags no meaning; a tagged name keeps its tag while it waits for a
// connection. Re-subscribes after a reconnect are untagged.
//
// Resume (docs/resume.md): the feed keeps (epoch, seq) per channel
// (positions.js) and sends them as `since` with the subscribe of every
// reconnect, for the channels `resumable(name)` allows (the page says no for
// a book whose local copy is not valid: it wants the snapshot instead). The
// gateway then replays what was missed, so the seq check goes on across the
// drop; each ack of such a subscribe goes to `onResume` ({channel, recovered,
// replayed} or {channel, recovered: false, reason}).

import { Positions } from "./positions.js";

const CLOSE_POLICY = {
  1001: "soon", // server restarting
  1008: "fatal", // policy violation
  1009: "fatal", // frame too large
  4001: "token", // token expired: wait for a new one
  4008: "long", // slow consumer
  4029: "long", // too many connections
};

export function wsUrl(token) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}://${window.location.host}/ws${query}`;
}

export class Feed {
  constructor({
    onMessage, onState, onGap, onRtt = () => {}, onResume = () => {}, resumable = () => true, minDelay = 500, maxDelay = 15000, longDelay = 10000, pingEvery = 5000,
  }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.onGap = onGap;
    this.onRtt = onRtt;
    this.onResume = onResume;
    this.resumable = resumable;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.longDelay = longDelay;
    this.pingEvery = pingEvery;
    this.channels = new Set(); // remembered subscriptions: canonical names from the acks
    this.pending = new Map(); // name asked for while not connected, as given -> tag
    this.inflight = new Map(); // subscribe id -> {names, answers, tag}
    this.pings = new Map(); // ping id -> sent at (performance.now())
    this.positions = new Positions(); // channel -> (epoch, seq): `since` on reconnects, and the gap check
    this.channelStats = new Map(); // channel -> {count, gaps, missed, lastAt, seq}
    this.token = "";
    this.ws = null;
    this.wanted = false; // the user asked to be connected
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.nextId = 1;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    clearTimeout(this.timer);
    if (this.ws) return;
    this.onState({ state: "connecting" });
    const ws = new WebSocket(wsUrl(this.token));
    this.ws = ws;
    ws.onopen = () => {
      this.openedAt = Date.now();
      this.resubscribe();
      this.ping();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.ping(), this.pingEvery);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
  }

  // on open: the remembered channels, untagged, and what waited, with its tag; each
  // with `since` for the channels whose position is known (none on a first open)
  resubscribe() {
    const batches = new Map(); // tag -> names
    const add = (name, tag) => {
      if (!batches.has(tag)) batches.set(tag, []);
      batches.get(tag).push(name);
    };
    for (const name of this.channels) if (!this.pending.has(name)) add(name, undefined);
    for (const [name, tag] of this.pending) add(name, tag);
    this.pending.clear();
    for (const [tag, names] of batches) this.sendSubscribe(names, tag, this.positions.since(names, this.resumable));
  }

  disconnect() {
    this.wanted = false;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
    else this.onState({ state: "disconnected" });
  }

  setToken(token) {
    this.token = token;
    if (this.connected && token) this.send({ type: "auth", token });
    else if (this.wanted && !this.ws) this.connect();
  }

  subscribe(names, tag) {
    if (this.connected) this.sendSubscribe(names, tag);
    else {
      // a name asked for twice keeps the tag it was given, if any
      for (const n of names) if (tag !== undefined || !this.pending.has(n)) this.pending.set(n, tag);
    }
  }

  // whether a subscribe with this tag names `name` (as given) and is not answered yet
  asking(name, tag) {
    if (this.pending.has(name) && this.pending.get(name) === tag) return true;
    return [...this.inflight.values()].some((r) => r.tag === tag && r.names.includes(name));
  }

  sendSubscribe(names, tag, since = null) {
    const id = this.nextId++;
    this.inflight.set(id, { names, answers: 0, tag });
    this.send(since ? { type: "subscribe", channels: names, id, since } : { type: "subscribe", channels: names, id });
  }

  unsubscribe(names) {
    names.forEach((n) => {
      this.channels.delete(n);
      this.pending.delete(n);
      this.positions.forget(n);
      this.channelStats.delete(n);
    });
    if (this.connected) this.send({ type: "unsubscribe", channels: names, id: this.nextId++ });
  }

  ping() {
    if (!this.connected) return;
    const id = `rtt-${this.nextId++}`;
    this.pings.set(id, performance.now());
    this.send({ type: "ping", id });
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  // a reply to one of our subscribes: once all its channels are answered, it is done; returns its tag
  answered(msg) {
    const request = this.inflight.get(msg.id);
    if (!request) return undefined;
    request.answers += 1;
    const whole = msg.type === "error" && !msg.channel; // the message itself was refused
    if (whole || request.answers >= request.names.length) this.inflight.delete(msg.id);
    return request.tag;
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      this.onMessage({ type: "error", code: "CLIENT", message: `undecodable frame: ${err}` });
      return;
    }
    if (msg.type === "pong" && this.pings.has(msg.id)) {
      this.onRtt(performance.now() - this.pings.get(msg.id));
      this.pings.delete(msg.id);
      return; // our own heartbeat: not a message for the page
    }
    let tag;
    if (msg.type === "subscribed" || (msg.type === "error" && msg.id !== undefined)) tag = this.answered(msg);
    let resume = null;
    if (msg.type === "subscribed") {
      this.channels.add(msg.channel);
      resume = this.positions.acked(msg);
    }
    if (msg.type === "unsubscribed" || (msg.type === "error" && msg.channel)) {
      this.channels.delete(msg.channel); // left, or refused: forget it
      this.positions.forget(msg.channel);
    }
    if (msg.type === "connected") this.onState({ state: "live", clientId: msg.clientId });
    // data: the acks of v1.1 carry a seq too (the channel's position), but they are no message of it
    if (typeof msg.seq === "number" && typeof msg.channel === "string" && msg.type !== "subscribed") {
      if (!this.channels.has(msg.channel)) return; // arrived before our unsubscribe was acknowledged
      this.count(msg);
    }
    this.onMessage(msg, tag);
    if (resume) this.onResume(resume);
  }

  count(msg) {
    let stats = this.channelStats.get(msg.channel);
    if (!stats) {
      stats = { count: 0, gaps: 0, missed: 0, lastAt: 0, seq: 0 };
      this.channelStats.set(msg.channel, stats);
    }
    stats.count += 1;
    stats.lastAt = Date.now();
    stats.seq = msg.seq;
    const last = this.positions.seen(msg.channel, msg.seq);
    if (last !== undefined && !msg.snapshot && msg.seq > last + 1) {
      stats.gaps += 1;
      stats.missed += msg.seq - last - 1;
      this.onGap({ channel: msg.channel, after: last, seq: msg.seq, missed: msg.seq - last - 1 });
    }
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pinger);
    this.pings.clear();
    // names sent but not answered are asked for again on the next connection (a tagged
    // one even if already held: its tag is news to the page)
    for (const { names, tag } of this.inflight.values()) {
      for (const n of names) if (tag !== undefined || !this.channels.has(n)) this.pending.set(n, tag);
    }
    this.inflight.clear();
    if (!this.wanted) {
      this.onState({ state: "disconnected", code, reason });
      return;
    }
    const policy = CLOSE_POLICY[code] || "retry";
    if (policy === "fatal") {
      this.wanted = false;
      this.onState({ state: "closed", code, reason: reason || "policy violation" });
      return;
    }
    if (policy === "token") {
      this.onState({ state: "token", code, reason: reason || "token expired: enter a new one" });
      return;
    }
    if (Date.now() - (this.openedAt || 0) > 5000) this.attempt = 0; // the last connection worked
    this.attempt += 1;
    const cap = Math.min(this.maxDelay, this.minDelay * 1.6 ** (this.attempt - 1));
    let delay = this.attempt === 1 ? Math.random() * this.minDelay : cap * (0.5 + Math.random() / 2);
    if (policy === "soon") delay = Math.random() * this.minDelay;
    if (policy === "long") delay = Math.max(delay, this.longDelay * (1 + Math.random() / 2));
    this.onState({ state: "reconnecting", code, reason, delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
