// A small candlestick renderer on a canvas: no library, no build step.
//
// `load(candles)` puts the history from /api/v1/klines under the chart;
// `update(kline)` replaces the live candle (same open time) or appends a new
// one, so live data that arrived while the history was on its way is kept.
// `draw()` paints the visible candles, volume bars under them, a price axis
// and the last price. The canvas's data attributes tell tests what is drawn:
// `data-candles` (count), `data-history` (candles that came from history)
// and `data-channel`.

const UP = "#3fb950";
const DOWN = "#f85149";
const UP_VOLUME = "rgba(63, 185, 80, 0.35)";
const DOWN_VOLUME = "rgba(248, 81, 73, 0.35)";
const GRID = "#30363d";
const TEXT = "#8b949e";
const BACKGROUND = "#0d1117";

function candleOf(k) {
  return {
    time: k.time, open: +k.open, high: +k.high, low: +k.low, close: +k.close,
    volume: +k.volume, final: k.isFinal,
  };
}

export class CandleChart {
  constructor(canvas, { maxCandles = 1000 } = {}) {
    this.canvas = canvas;
    this.maxCandles = maxCandles;
    this.candles = [];
    this.channel = null;
    this.note = "";
    this.pending = false;
    new ResizeObserver(() => this.schedule()).observe(canvas);
  }

  reset(channel, note = "") {
    this.channel = channel;
    this.candles = [];
    this.note = note;
    this.canvas.dataset.history = "0";
    this.canvas.dataset.channel = channel || "";
    this.schedule();
  }

  setNote(note) {
    this.note = note;
    this.schedule();
  }

  // history, oldest first; live candles already here are newer and win
  load(klines) {
    const live = this.candles;
    const history = klines.map(candleOf);
    this.candles = [...history.filter((c) => !live.some((l) => l.time === c.time)), ...live]
      .sort((a, b) => a.time - b.time);
    this.canvas.dataset.history = String(history.length);
    this.trim();
    this.schedule();
  }

  update(k) {
    const candle = candleOf(k);
    const list = this.candles;
    const last = list[list.length - 1];
    if (!last || candle.time > last.time) list.push(candle);
    else if (candle.time === last.time) list[list.length - 1] = candle;
    else {
      const i = list.findIndex((c) => c.time === candle.time);
      if (i >= 0) list[i] = candle;
    }
    this.trim();
    this.schedule();
  }

  trim() {
    if (this.candles.length > this.maxCandles) this.candles.splice(0, this.candles.length - this.maxCandles);
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    canvas.dataset.candles = String(this.candles.length);
    ctx.font = "11px ui-monospace, monospace";
    if (!this.candles.length) {
      ctx.fillStyle = TEXT;
      const waiting = this.channel ? `waiting for ${this.channel}` : "pick a symbol and an interval";
      ctx.fillText(this.note || waiting, 12, 20);
      return;
    }
    const axis = 72;
    const plotWidth = width - axis;
    const slot = Math.max(3, Math.min(14, plotWidth / this.candles.length));
    const visible = this.candles.slice(-Math.floor(plotWidth / slot));
    const area = { top: 10, bottom: Math.round((height - 20) * 0.78), volumeBottom: height - 20 };
    const y = this.priceScale(ctx, visible, area, plotWidth);
    this.drawVolume(ctx, visible, area, slot);
    this.drawCandles(ctx, visible, y, slot);
    this.drawLast(ctx, visible, y, plotWidth, axis);
    this.drawTimes(ctx, visible, slot, height);
    if (this.note) {
      ctx.fillStyle = TEXT;
      ctx.fillText(this.note, 8, area.top + 12);
    }
  }

  // the price grid and axis; returns price -> y
  priceScale(ctx, visible, area, plotWidth) {
    let low = Math.min(...visible.map((c) => c.low));
    let high = Math.max(...visible.map((c) => c.high));
    if (high === low) {
      high += 1;
      low -= 1;
    }
    const pad = (high - low) * 0.08;
    low -= pad;
    high += pad;
    const y = (price) => area.top + ((high - price) / (high - low)) * (area.bottom - area.top);
    this.digits = Math.max(0, Math.min(6, 3 - Math.floor(Math.log10(high - low))));
    ctx.strokeStyle = GRID;
    ctx.fillStyle = TEXT;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const price = low + ((high - low) * i) / 4;
      const py = Math.round(y(price)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, py);
      ctx.lineTo(plotWidth, py);
      ctx.stroke();
      ctx.fillText(price.toFixed(this.digits), plotWidth + 6, py + 4);
    }
    return y;
  }

  drawVolume(ctx, visible, area, slot) {
    const most = Math.max(1e-12, ...visible.map((c) => c.volume));
    const room = area.volumeBottom - area.bottom - 6;
    const width = Math.max(1, slot * 0.65);
    visible.forEach((c, i) => {
      const h = Math.max(c.volume > 0 ? 1 : 0, (c.volume / most) * room);
      ctx.fillStyle = c.close >= c.open ? UP_VOLUME : DOWN_VOLUME;
      ctx.fillRect(i * slot + slot / 2 - width / 2, area.volumeBottom - h, width, h);
    });
  }

  drawCandles(ctx, visible, y, slot) {
    const body = Math.max(1, slot * 0.65);
    visible.forEach((c, i) => {
      const x = i * slot + slot / 2;
      const color = c.close >= c.open ? UP : DOWN;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, y(c.high));
      ctx.lineTo(Math.round(x) + 0.5, y(c.low));
      ctx.stroke();
      const y0 = y(Math.max(c.open, c.close));
      const h = Math.max(1, y(Math.min(c.open, c.close)) - y0);
      if (c.final) ctx.fillRect(x - body / 2, y0, body, h);
      else ctx.strokeRect(x - body / 2 + 0.5, y0 + 0.5, body - 1, h); // the live candle: hollow
    });
  }

  drawLast(ctx, visible, y, plotWidth, axis) {
    const last = visible[visible.length - 1];
    const color = last.close >= last.open ? UP : DOWN;
    const ly = Math.round(y(last.close)) + 0.5;
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = color;
    ctx.beginPath();
    ctx.moveTo(0, ly);
    ctx.lineTo(plotWidth, ly);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = color;
    ctx.fillRect(plotWidth + 2, ly - 8, axis - 4, 16);
    ctx.fillStyle = BACKGROUND;
    ctx.fillText(last.close.toFixed(this.digits), plotWidth + 6, ly + 4);
  }

  drawTimes(ctx, visible, slot, height) {
    ctx.fillStyle = TEXT;
    const span = visible.length > 1 ? visible[visible.length - 1].time - visible[0].time : 0;
    const every = Math.max(1, Math.ceil(70 / slot));
    visible.forEach((c, i) => {
      if (i % every === 0) {
        const iso = new Date(c.time * 1000).toISOString();
        const text = span > 2 * 86400 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19);
        ctx.fillText(text, Math.max(0, i * slot), height - 5);
      }
    });
  }
}
