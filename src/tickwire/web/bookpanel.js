// The order-book panel: one `book:SYMBOL:DEPTH` channel as a ladder with
// cumulative sizes and a depth chart (canvas), from a verified local Book.
//
// Messages are applied as they come; the drawing is coalesced to one per
// animation frame, so a burst of diffs costs one redraw. The panel says when
// its book cannot be trusted (waiting for the snapshot after a gap or a
// checksum mismatch, or the channel is stale): the ladder is then dimmed, never
// patched up. A connection that drops pauses a book in step: the reconnect
// resumes it (the gateway replays the diffs it missed, or sends a snapshot). State for tests and screens sits in data- attributes of the
// panel: data-channel, data-seq, data-synced, data-checksum, data-resyncs.

import { Book, cumulative } from "./book.js";
import { el } from "./views.js";

export class BookPanel {
  constructor(panel, { ladder, chart, title, status, rows = 12, onResync = () => {} }) {
    this.panel = panel;
    this.ladderBox = ladder;
    this.canvas = chart;
    this.title = title;
    this.status = status;
    this.rows = rows;
    this.onResync = onResync; // (channel) => subscribe to it again
    this.book = null;
    this.drawing = false;
    this.reset(null);
  }

  get channel() {
    return this.book ? this.book.channel : null;
  }

  reset(channel) {
    this.book = channel ? new Book(channel) : null;
    this.note = "";
    this.paused = false; // in step when the connection dropped: waiting for the resume
    this.title.textContent = channel || "order book";
    this.panel.dataset.channel = channel || "";
    this.ladderBox.replaceChildren(el("div", "empty", channel ? `waiting for ${channel}` : "choose a symbol and a depth"));
    this.schedule();
  }

  // a `book` or `status` message of the panel's channel
  apply(msg) {
    if (!this.book || msg.channel !== this.book.channel) return;
    if (this.book.apply(msg) === "resync") this.onResync(this.book.channel);
    this.schedule();
  }

  // the gateway refused the channel (an `error` reply): say so until another pick
  refused(message) {
    this.note = message;
    this.schedule();
  }

  // the connection dropped: a book in step waits for the reconnect's resume, any other for a snapshot
  invalidate() {
    if (this.book && this.book.synced) this.paused = true;
    else if (this.book) this.book.invalidate();
    this.schedule();
  }

  // whether the reconnect may resume the book from its position: only a book in step
  get resumable() {
    return Boolean(this.book && this.book.synced);
  }

  // the `subscribed` ack of the panel's channel: a resume that failed means a snapshot follows
  acked(msg) {
    this.paused = false;
    if (this.book && msg.wasRecovering && !msg.recovered) this.book.invalidate(`not recovered: ${msg.reason}`);
    this.schedule();
  }

  schedule() {
    if (this.drawing) return;
    this.drawing = true;
    requestAnimationFrame(() => {
      this.drawing = false;
      this.draw();
    });
  }

  draw() {
    const book = this.book;
    const ok = Boolean(book && book.synced && !book.stale && !this.paused);
    this.panel.dataset.synced = String(Boolean(book && book.synced));
    this.panel.dataset.seq = book && book.seq !== null ? String(book.seq) : "";
    this.panel.dataset.checksum = book && book.precision ? String(book.checksum()) : "";
    this.panel.dataset.resyncs = String(book ? book.resyncs : 0);
    this.panel.classList.toggle("untrusted", Boolean(book) && !ok);
    this.status.textContent = !book ? "" : this.note ? `refused: ${this.note}` : this.paused ? "paused: disconnected"
      : book.stale ? `stale: ${book.stale}`
      : !book.synced ? (book.problem ? `resyncing (${book.problem})` : "waiting for the snapshot")
        : `seq ${book.seq} · checksum ok`;
    this.status.className = `book-status state-${ok ? "live" : "stale"}`;
    if (!book || !book.precision) {
      this.drawChart([], []);
      return;
    }
    const [bids, asks] = book.top(this.rows);
    this.drawLadder(cumulative(bids), cumulative(asks), book);
    this.drawChart(cumulative(book.bids), cumulative(book.asks));
  }

  drawLadder(bids, asks, book) {
    const { price: pd, qty: qd } = book.precision;
    const most = Math.max(1e-12, ...bids.map((l) => l[2]), ...asks.map((l) => l[2]));
    const line = (side, [price, qty, total]) => {
      const row = el("div", `level ${side}`);
      const bar = el("div", "bar");
      bar.style.width = `${Math.min(100, (total / most) * 100).toFixed(1)}%`;
      row.append(bar, el("span", "price", price.toFixed(pd)), el("span", "qty", qty.toFixed(qd)),
        el("span", "total", total.toFixed(qd)));
      return row;
    };
    const spread = book.spread;
    const head = el("div", "level head");
    head.append(el("span", "", "price"), el("span", "", "size"), el("span", "", "total"));
    this.ladderBox.replaceChildren(
      head,
      ...asks.slice().reverse().map((l) => line("ask", l)),
      el("div", "spread", spread === null ? "spread -" : `spread ${spread.toFixed(pd)}`),
      ...bids.map((l) => line("bid", l)),
    );
  }

  // cumulative size against price: bids (green) rise to the left of the mid, asks (red) to the right
  drawChart(bids, asks) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 160;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    canvas.dataset.points = String(bids.length + asks.length);
    if (!bids.length && !asks.length) return;
    const prices = [...bids, ...asks].map((l) => l[0]);
    const margin = (Math.max(...prices) - Math.min(...prices)) * 0.05 || 1; // room past the outer levels
    const low = Math.min(...prices) - margin;
    const high = Math.max(...prices) + margin;
    const top = Math.max(...bids.map((l) => l[2]), ...asks.map((l) => l[2])) * 1.05;
    const pad = 4;
    const base = height - pad;
    const x = (p) => pad + ((p - low) / (high - low)) * (width - 2 * pad);
    const y = (total) => base - (total / top) * (height - 2 * pad);
    // a side from its best price outwards, a step at each level, flat to its edge of the chart
    const area = (levels, color, edge) => {
      if (!levels.length) return;
      ctx.beginPath();
      ctx.moveTo(x(levels[0][0]), base);
      let prev = base;
      for (const [price, , total] of levels) {
        ctx.lineTo(x(price), prev);
        ctx.lineTo(x(price), (prev = y(total)));
      }
      ctx.lineTo(edge, prev);
      ctx.lineTo(edge, base);
      ctx.closePath();
      ctx.fillStyle = `${color}55`;
      ctx.strokeStyle = color;
      ctx.fill();
      ctx.stroke();
    };
    area(bids, "#3fb950", pad);
    area(asks, "#f85149", width - pad);
  }
}
