// The local order book of one `book:SYMBOL:DEPTH` channel, proven on every message.
//
// The rules of docs/protocol.md ("Order book channel"), as in the Python
// client's tickwire.client.book:
// 1. a message with `snapshot: true` replaces the book;
// 2. a diff applies only to a synced book whose last seq was `seq - 1`; each
//    level listed replaces the level at that price, quantity 0 removes it; the
//    book is never trimmed and no level is guessed;
// 3. after every message the checksum v1 of the book must equal the message's.
// A seq gap or a mismatch unsyncs the book: `apply` answers "resync" once (the
// page subscribes to the channel again, and the gateway re-sends the
// snapshot), then "ignored" for every diff until that snapshot. A diff whose
// seq is at or below the book's was already folded into it: "ignored".
// Pure: no DOM, no socket.

export const CHECKSUM_LEVELS = 10;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

// CRC-32 (zlib's) of an ASCII string, unsigned
export function crc32(text) {
  let c = 0xffffffff;
  for (let i = 0; i < text.length; i++) c = CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// a JSON number at the snapshot's precision, without the dot and the leading zeros
function digits(value, decimals) {
  return value.toFixed(decimals).replace(".", "").replace(/^0+/, "") || "0";
}

// the string checksum v1 hashes: price then quantity of the top asks (best first), then of the top bids
export function checksumText(asks, bids, precision) {
  let text = "";
  for (const side of [asks, bids]) {
    for (const [price, qty] of side.slice(0, CHECKSUM_LEVELS)) {
      text += digits(price, precision.price) + digits(qty, precision.qty);
    }
  }
  return text;
}

export function checksum(asks, bids, precision) {
  return crc32(checksumText(asks, bids, precision));
}

// one side: quantity by price, and the prices sorted best first
class Side {
  constructor(descending) {
    this.descending = descending;
    this.qty = new Map();
    this.prices = [];
  }

  // the index where `price` is or would go, best first
  index(price) {
    let lo = 0;
    let hi = this.prices.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = this.prices[mid];
      if (this.descending ? p > price : p < price) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  replace(levels) {
    this.qty = new Map(levels.filter(([, q]) => q !== 0));
    this.prices = [...this.qty.keys()].sort((a, b) => (this.descending ? b - a : a - b));
  }

  set(price, qty) {
    if (qty !== 0) {
      if (!this.qty.has(price)) this.prices.splice(this.index(price), 0, price);
      this.qty.set(price, qty);
    } else if (this.qty.delete(price)) {
      this.prices.splice(this.index(price), 1);
    }
  }

  best(n = this.prices.length) {
    return this.prices.slice(0, n).map((p) => [p, this.qty.get(p)]);
  }
}

export class Book {
  constructor(channel) {
    this.channel = channel;
    this.bidSide = new Side(true);
    this.askSide = new Side(false);
    this.seq = null;
    this.depth = null;
    this.precision = null;
    this.updateId = null;
    this.timestamp = null;
    this.synced = false;
    this.stale = null; // reason of the last `stale` status; null while live
    this.resyncs = 0;
    this.problem = null; // why the book last lost sync
    this.asked = false; // "resync" answered already for this loss
  }

  // apply a `book` or `status` message of this channel: "snapshot", "diff", "ignored" or "resync"
  apply(msg) {
    if (msg.type === "status") {
      this.stale = msg.status === "live" ? null : msg.reason || msg.status;
      return "ignored";
    }
    if (msg.channel !== this.channel) throw new Error(`a message of ${msg.channel} given to the book of ${this.channel}`);
    if (msg.snapshot) return this.snapshot(msg);
    if (!this.synced) return this.lost(null);
    if (msg.seq <= this.seq) return "ignored"; // already in the snapshot the book holds
    if (msg.seq !== this.seq + 1) return this.lost(`seq gap: ${this.seq} -> ${msg.seq}`);
    for (const [price, qty] of msg.data.bids) this.bidSide.set(price, qty);
    for (const [price, qty] of msg.data.asks) this.askSide.set(price, qty);
    return this.verify(msg, "diff");
  }

  snapshot(msg) {
    const precision = msg.data.precision || this.precision;
    if (!precision) return this.lost("snapshot without precision: cannot verify it");
    this.precision = precision;
    if (msg.depth !== undefined) this.depth = msg.depth;
    this.bidSide.replace(msg.data.bids);
    this.askSide.replace(msg.data.asks);
    this.synced = true;
    this.asked = false;
    this.problem = null;
    if (msg.reset) this.stale = null;
    return this.verify(msg, "snapshot");
  }

  verify(msg, done) {
    this.seq = msg.seq;
    this.updateId = msg.data.updateId;
    this.timestamp = msg.data.timestamp;
    const have = this.checksum();
    if (have !== msg.data.checksum) return this.lost(`checksum mismatch at seq ${msg.seq}: ${have} != ${msg.data.checksum}`);
    return done;
  }

  lost(problem) {
    this.synced = false;
    if (problem) this.problem = problem;
    if (this.asked) return "ignored";
    this.asked = true;
    this.resyncs += 1;
    return "resync";
  }

  // the connection is gone: wait for the snapshot the next subscribe brings, without asking
  invalidate(problem = "disconnected") {
    this.synced = false;
    this.asked = true;
    this.problem = problem;
  }

  checksum() {
    return checksum(this.askSide.best(CHECKSUM_LEVELS), this.bidSide.best(CHECKSUM_LEVELS), this.precision);
  }

  get bids() { return this.bidSide.best(); }

  get asks() { return this.askSide.best(); }

  top(n) { return [this.bidSide.best(n), this.askSide.best(n)]; }

  get spread() {
    const bid = this.bidSide.prices[0];
    const ask = this.askSide.prices[0];
    return bid === undefined || ask === undefined ? null : ask - bid;
  }
}

// [price, qty, total] for levels best first: total is the size up to that price
export function cumulative(levels) {
  let total = 0;
  return levels.map(([price, qty]) => [price, qty, (total += qty)]);
}
