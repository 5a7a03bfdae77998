// DOM views of the dashboard. Feed data reaches the page only as text:
// every value goes through textContent or createTextNode, never innerHTML.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

export function fmt(value, digits) {
  if (typeof value !== "number") return String(value ?? "-");
  if (digits === undefined) return value.toLocaleString("en-US", { maximumFractionDigits: 8 });
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// decimals of a number as the gateway sent it (JSON drops trailing zeros: keep the widest seen)
export function decimals(value) {
  const text = String(value);
  const dot = text.indexOf(".");
  return dot < 0 || text.includes("e") ? 0 : Math.min(8, text.length - dot - 1);
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 23);
}

// --- price and ticker table ---------------------------------------------------

export class PriceTable {
  constructor(tbody) {
    this.tbody = tbody;
    this.rows = new Map();
  }

  row(channel) {
    let row = this.rows.get(channel);
    if (!row) {
      row = el("tr");
      row.dataset.channel = channel;
      for (const name of ["channel", "price", "change", "high", "low", "volume", "spread", "state"]) {
        row.appendChild(el("td", `col-${name}`));
      }
      row.cells[0].textContent = channel;
      row.cells[7].textContent = "waiting";
      this.tbody.appendChild(row);
      this.rows.set(channel, row);
    }
    return row;
  }

  update(msg) {
    const row = this.row(msg.channel);
    const d = msg.data;
    const cell = row.cells[1];
    const previous = Number(cell.dataset.value);
    if (cell.dataset.value !== undefined && d.price !== previous) {
      const up = d.price > previous;
      cell.className = `col-price ${up ? "up" : "down"}`;
      cell.dataset.move = up ? "up" : "down";
      row.classList.remove("flash-up", "flash-down");
      void row.offsetWidth; // restart the flash animation
      row.classList.add(up ? "flash-up" : "flash-down");
    }
    cell.dataset.value = String(d.price);
    const digits = Math.max(Number(row.dataset.digits || 0), decimals(d.price));
    row.dataset.digits = String(digits);
    cell.textContent = `${fmt(d.price, digits)} ${cell.dataset.move === "down" ? "▼" : cell.dataset.move ? "▲" : ""}`;
    row.cells[2].textContent = `${d.changePercent24h > 0 ? "+" : ""}${fmt(d.changePercent24h, 2)}%`;
    row.cells[2].className = `col-change ${d.changePercent24h >= 0 ? "up" : "down"}`;
    row.cells[3].textContent = fmt(d.high24h);
    row.cells[4].textContent = fmt(d.low24h);
    row.cells[5].textContent = fmt(d.volume24h, 2);
    row.cells[6].textContent = msg.type === "ticker" ? fmt(d.ask - d.bid, 8).replace(/\.?0+$/, "") : "";
    this.setState(msg.channel, "live");
  }

  setState(channel, state, reason) {
    const row = this.rows.get(channel);
    if (!row) return;
    row.cells[7].textContent = reason ? `${state}: ${reason}` : state;
    row.cells[7].className = `col-state state-${state}`;
    row.classList.toggle("stale", state === "stale");
  }

  remove(channel) {
    const row = this.rows.get(channel);
    if (row) row.remove();
    this.rows.delete(channel);
  }
}

// --- depth ladder ---------------------------------------------------------------

export class DepthLadder {
  constructor(container, title) {
    this.container = container;
    this.title = title;
    this.channel = null;
  }

  reset(channel) {
    this.channel = channel;
    this.title.textContent = channel || "depth";
    this.container.replaceChildren(el("div", "empty", channel ? `waiting for ${channel}` : "subscribe to a depth channel"));
  }

  update(msg) {
    const { bids, asks } = msg.data;
    const levels = 8;
    const shownAsks = asks.slice(0, levels).reverse();
    const shownBids = bids.slice(0, levels);
    const most = Math.max(1e-12, ...shownAsks.map((l) => l[1]), ...shownBids.map((l) => l[1]));
    const digits = Math.max(0, ...shownAsks.map((l) => decimals(l[0])), ...shownBids.map((l) => decimals(l[0])));
    const line = (side, [price, qty]) => {
      const row = el("div", `level ${side}`);
      const bar = el("div", "bar");
      bar.style.width = `${Math.min(100, (qty / most) * 100).toFixed(1)}%`;
      row.append(bar, el("span", "price", fmt(price, digits)), el("span", "qty", fmt(qty)));
      return row;
    };
    const spread = asks.length && bids.length ? asks[0][0] - bids[0][0] : NaN;
    const middle = el("div", "spread", Number.isFinite(spread) ? `spread ${fmt(+spread.toFixed(8))}` : "spread -");
    this.container.replaceChildren(
      ...shownAsks.map((l) => line("ask", l)),
      middle,
      ...shownBids.map((l) => line("bid", l)),
    );
  }
}

// --- trade tape -------------------------------------------------------------------

export class TradeTape {
  constructor(list, { max = 40 } = {}) {
    this.list = list;
    this.max = max;
  }

  add(msg) {
    const t = msg.data;
    const item = el("li", t.side === "buy" ? "buy" : "sell");
    item.dataset.seq = String(msg.seq); // so a hole in the tape can be seen (and tested)
    item.dataset.id = String(t.id);
    item.append(
      el("span", "time", clock(t.timestamp)),
      el("span", "symbol", msg.symbol),
      el("span", "side", t.side),
      el("span", "price", fmt(t.price)),
      el("span", "qty", fmt(t.quantity)),
    );
    this.list.prepend(item);
    while (this.list.childElementCount > this.max) this.list.lastElementChild.remove();
  }
}

// --- message log ---------------------------------------------------------------------

export class Log {
  constructor(list, { max = 300 } = {}) {
    this.list = list;
    this.max = max;
    this.count = 0;
  }

  add(kind, text, detail) {
    const item = el("li", `log-${kind}`);
    item.append(el("span", "time", clock(Date.now())), el("span", "kind", kind));
    item.appendChild(document.createTextNode(` ${text}`));
    if (detail !== undefined) item.appendChild(el("span", "detail", ` ${detail}`));
    this.list.prepend(item);
    this.count += 1;
    this.list.dataset.count = String(this.count);
    while (this.list.childElementCount > this.max) this.list.lastElementChild.remove();
  }
}

// --- stats panel -----------------------------------------------------------------------

const STATS = [
  ["connectedClients", "clients"],
  ["subscriptions", "subscriptions"],
  ["activeChannels", "channels"],
  ["upstreamStreams", "upstream streams"],
  ["messagesIn", "messages in"],
  ["messagesOut", "messages out"],
  ["conflatedMessages", "conflated"],
  ["slowConsumerDisconnects", "slow disconnects"],
  ["uptimeSeconds", "uptime s"],
];

export function renderStats(dl, data) {
  const nodes = [];
  for (const [key, label] of STATS) {
    if (!(key in data)) continue;
    const value = Array.isArray(data[key]) ? data[key].length : data[key];
    nodes.push(el("dt", "", label), el("dd", "", fmt(value)));
  }
  dl.replaceChildren(...nodes);
}

export function renderProtected(dl) {
  dl.replaceChildren(el("dt", "protected", "stats are protected (--protect-stats)"));
}

// --- per-channel health: message rate, seq gaps, time since the last message ------------------

function age(ms) {
  if (ms < 1000) return "now";
  const s = ms / 1000;
  return s < 90 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(0)} min`;
}

export class ChannelTable {
  constructor(tbody, { window = 5000 } = {}) {
    this.tbody = tbody;
    this.window = window;
    this.samples = new Map(); // channel -> [[time, count], ...] over the last `window` ms
  }

  rate(channel, count, now) {
    const samples = this.samples.get(channel) || [];
    samples.push([now, count]);
    while (samples.length > 1 && now - samples[0][0] > this.window) samples.shift();
    this.samples.set(channel, samples);
    const [t0, c0] = samples[0];
    return now > t0 ? ((count - c0) * 1000) / (now - t0) : 0;
  }

  // channels: canonical names; stats: Map from Feed.channelStats; stale: Map channel -> {reason, since}
  render(channels, stats, stale) {
    const now = Date.now();
    for (const channel of this.samples.keys()) if (!channels.includes(channel)) this.samples.delete(channel);
    const rows = channels.map((channel) => {
      const s = stats.get(channel) || { count: 0, gaps: 0, missed: 0, lastAt: 0, seq: 0 };
      const down = stale.get(channel);
      const row = el("tr");
      row.dataset.channel = channel;
      const state = down ? `stale ${age(now - down.since)}` : s.count ? "live" : "waiting";
      row.append(
        el("td", "col-channel", channel),
        el("td", "col-rate", fmt(this.rate(channel, s.count, now), 1)),
        el("td", "col-seq", s.seq ? String(s.seq) : "-"),
        el("td", `col-gaps${s.gaps ? " warn" : ""}`, s.gaps ? `${s.gaps} (${s.missed} missed)` : "0"),
        el("td", "col-last", s.lastAt ? age(now - s.lastAt) : "-"),
        el("td", `col-state state-${down ? "stale" : s.count ? "live" : "waiting"}`, state),
      );
      return row;
    });
    this.tbody.replaceChildren(...rows);
  }
}
