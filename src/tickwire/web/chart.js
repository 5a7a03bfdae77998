// A small candlestick renderer on a canvas: no library, no build step.
//
// `update(kline)` replaces the live candle (same open time) or appends a new
// one; `draw()` paints the visible candles, a price axis and the last price.
// The canvas's `data-candles` attribute holds the candle count (tests read it).

const UP = "#3fb950";
const DOWN = "#f85149";
const GRID = "#30363d";
const TEXT = "#8b949e";
const BACKGROUND = "#0d1117";

export class CandleChart {
  constructor(canvas, { maxCandles = 120 } = {}) {
    this.canvas = canvas;
    this.maxCandles = maxCandles;
    this.candles = [];
    this.channel = null;
    this.pending = false;
    new ResizeObserver(() => this.schedule()).observe(canvas);
  }

  reset(channel) {
    this.channel = channel;
    this.candles = [];
    this.schedule();
  }

  update(k) {
    const candle = {
      time: k.time, open: +k.open, high: +k.high, low: +k.low, close: +k.close,
      volume: +k.volume, final: k.isFinal,
    };
    const list = this.candles;
    const last = list[list.length - 1];
    if (!last || candle.time > last.time) list.push(candle);
    else if (candle.time === last.time) list[list.length - 1] = candle;
    else {
      const i = list.findIndex((c) => c.time === candle.time);
      if (i >= 0) list[i] = candle;
    }
    if (list.length > this.maxCandles) list.splice(0, list.length - this.maxCandles);
    this.schedule();
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
      ctx.fillText(this.channel ? `waiting for ${this.channel}` : "subscribe to a klines channel", 12, 20);
      return;
    }
    const axis = 72;
    const top = 10;
    const bottom = height - 20;
    const plotWidth = width - axis;
    const slot = Math.max(3, Math.min(14, plotWidth / this.candles.length));
    const visible = this.candles.slice(-Math.floor(plotWidth / slot));
    let low = Math.min(...visible.map((c) => c.low));
    let high = Math.max(...visible.map((c) => c.high));
    if (high === low) {
      high += 1;
      low -= 1;
    }
    const pad = (high - low) * 0.08;
    low -= pad;
    high += pad;
    const y = (price) => top + ((high - price) / (high - low)) * (bottom - top);
    const digits = Math.max(0, Math.min(6, 3 - Math.floor(Math.log10(high - low))));
    // grid and price axis
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
      ctx.fillText(price.toFixed(digits), plotWidth + 6, py + 4);
    }
    // candles
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
    // last price and time labels
    const last = visible[visible.length - 1];
    const ly = Math.round(y(last.close)) + 0.5;
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = last.close >= last.open ? UP : DOWN;
    ctx.beginPath();
    ctx.moveTo(0, ly);
    ctx.lineTo(plotWidth, ly);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = last.close >= last.open ? UP : DOWN;
    ctx.fillRect(plotWidth + 2, ly - 8, axis - 4, 16);
    ctx.fillStyle = BACKGROUND;
    ctx.fillText(last.close.toFixed(digits), plotWidth + 6, ly + 4);
    ctx.fillStyle = TEXT;
    const every = Math.max(1, Math.ceil(60 / slot));
    visible.forEach((c, i) => {
      if (i % every === 0) {
        const t = new Date(c.time * 1000).toISOString().slice(11, 19);
        ctx.fillText(t, Math.max(0, i * slot), height - 5);
      }
    });
  }
}
