// The tickwire dashboard: wires the feed to the views.
//
// Every server message goes through one `switch (msg.type)`; a type this page
// does not know throws, and the throw is caught and shown in the log so the
// page keeps running. `/?channels=a,b` chooses the channels subscribed on load
// (empty for none); otherwise the last set (localStorage) or a default set.
// Only canonical names (from the `subscribed` acks) are saved.
//
// The chart shows `klines:SYMBOL:INTERVAL` of its two pickers: history from
// /api/v1/klines first, then live candles from the channel, which the chart
// subscribes to itself (and leaves when it switches). Symbols come from
// /api/v1/symbols, so the pickers list what the source really has.

import { CandleChart } from "./chart.js";
import { Feed } from "./feed.js";
import {
  ChannelTable, DepthLadder, Log, PriceTable, TradeTape, el, fmt, renderProtected, renderStats,
} from "./views.js";

const DEFAULT_CHANNELS = ["price:BTCUSDT", "price:ETHUSDT", "ticker:SOLUSDT", "depth:BTCUSDT", "trades:BTCUSDT"];
const DEFAULT_CHART = ["BTCUSDT", "1m"];
const HISTORY = 500; // candles fetched when the chart opens
const SUGGESTED = 60; // symbols offered in the subscribe box
const $ = (id) => document.getElementById(id);

const prices = new PriceTable($("prices"));
const chart = new CandleChart($("candles"));
const ladder = new DepthLadder($("depth"), $("depth-title"));
const tape = new TradeTape($("tape"));
const log = new Log($("log"));
const channelTable = new ChannelTable($("channel-stats"));
const stale = new Map(); // channel -> {reason, since}
let health = null;
let chartRequest = 0;

function initialChannels() {
  const query = new URLSearchParams(window.location.search);
  if (query.has("channels")) return query.get("channels").split(",").map((c) => c.trim()).filter(Boolean);
  try {
    const saved = JSON.parse(localStorage.getItem("tickwire.channels"));
    if (Array.isArray(saved)) return saved.filter((c) => typeof c === "string");
  } catch { /* no saved set */ }
  return DEFAULT_CHANNELS;
}

// the chart opens on the first klines channel asked for, else on the default
function initialChart(names) {
  for (const name of names) {
    const [kind, symbol, interval] = name.split(":");
    if (kind === "klines" && symbol && interval) return [symbol.toUpperCase(), interval];
  }
  return DEFAULT_CHART;
}

function saveChannels() {
  try {
    localStorage.setItem("tickwire.channels", JSON.stringify([...feed.channels]));
  } catch { /* private mode */ }
}

// --- the connection ----------------------------------------------------------------

const feed = new Feed({
  onMessage: (msg) => {
    try {
      handle(msg);
    } catch (err) {
      log.add("error", String(err.message || err));
    }
  },
  onState: showConnection,
  onGap: (gap) => log.add("gap", `${gap.channel}: ${gap.missed} missed`, `seq ${gap.after} → ${gap.seq}`),
  onRtt: (ms) => {
    $("rtt").textContent = `rtt ${fmt(ms, ms < 10 ? 1 : 0)} ms`;
  },
});

function showConnection({ state, code, reason, delay }) {
  const badge = $("conn");
  const text = {
    live: "live",
    connecting: "connecting…",
    reconnecting: `reconnecting in ${((delay || 0) / 1000).toFixed(1)} s`,
    disconnected: "disconnected",
    closed: `closed (${code})`,
    token: "token expired",
  }[state];
  badge.textContent = text;
  badge.className = `badge state-${state}`;
  $("connect").textContent = state === "disconnected" || state === "closed" ? "Connect" : "Disconnect";
  if (state !== "live") $("rtt").textContent = "rtt -";
  if (state !== "live" && state !== "connecting") {
    log.add(state === "closed" ? "error" : "status", `connection ${text}`, code ? `code ${code} ${reason || ""}` : undefined);
  }
  if (state === "disconnected" || state === "closed") {
    for (const channel of feed.channels) prices.setState(channel, "paused");
  }
}

// --- messages -----------------------------------------------------------------------

function handle(msg) {
  const logData = $("log-data").checked;
  switch (msg.type) {
    case "connected":
      log.add("connected", `as ${msg.clientId}`, msg.authenticated ? `user ${msg.userId}` : "anonymous");
      break;
    case "subscribed":
      addChip(msg.channel);
      log.add("subscribed", msg.channel);
      saveChannels();
      break;
    case "unsubscribed":
      dropChannel(msg.channel);
      log.add("unsubscribed", msg.channel, msg.reason);
      saveChannels();
      break;
    case "error":
      log.add("error", `${msg.code}: ${msg.message}`, msg.channel);
      if (msg.channel) removeChip(msg.channel);
      break;
    case "status":
      if (msg.status === "stale") stale.set(msg.channel, { reason: msg.reason || "stale", since: Date.now() });
      else stale.delete(msg.channel);
      prices.setState(msg.channel, msg.status, msg.reason);
      showStale();
      log.add(msg.status === "stale" ? "stale" : "live", msg.channel, msg.reason);
      break;
    case "price":
    case "ticker":
      prices.update(msg);
      if (logData) log.add(msg.type, msg.channel, `${fmt(msg.data.price)} #${msg.seq}`);
      break;
    case "kline":
      if (msg.channel === chart.channel) chart.update(msg.data);
      if (logData && msg.data.isFinal) log.add("kline", msg.channel, `close ${fmt(msg.data.close)} final`);
      break;
    case "trade":
      tape.add(msg);
      if (logData) log.add("trade", msg.channel, `${msg.data.side} ${fmt(msg.data.quantity)} @ ${fmt(msg.data.price)}`);
      break;
    case "depth":
      if (!ladder.channel) selectDepth(msg.channel);
      if (msg.channel === ladder.channel) ladder.update(msg);
      break;
    case "signal":
    case "order":
    case "portfolio":
    case "account":
      log.add(msg.type, msg.channel, JSON.stringify(msg.data));
      break;
    case "pong":
    case "authenticated":
    case "subscriptions":
      log.add(msg.type, JSON.stringify(msg));
      break;
    default:
      throw new Error(`unknown message type ${JSON.stringify(msg.type)}`);
  }
}

// --- subscriptions ----------------------------------------------------------------

function addChip(channel) {
  const list = $("subscriptions");
  if ([...list.children].some((li) => li.dataset.channel === channel)) return;
  const chip = el("li", "chip");
  chip.dataset.channel = channel;
  const remove = el("button", "remove", "×");
  remove.type = "button";
  remove.title = `unsubscribe ${channel}`;
  remove.setAttribute("aria-label", `unsubscribe ${channel}`);
  remove.addEventListener("click", () => feed.unsubscribe([channel]));
  chip.append(el("span", "", channel), remove);
  list.appendChild(chip);
  if (channel.startsWith("depth:")) refreshDepthChoices();
}

function removeChip(channel) {
  for (const li of [...$("subscriptions").children]) if (li.dataset.channel === channel) li.remove();
}

function dropChannel(channel) {
  removeChip(channel);
  prices.remove(channel);
  stale.delete(channel);
  showStale();
  if (channel === chart.channel) chart.setNote("not live: the chart's channel was unsubscribed");
  if (channel === ladder.channel) selectDepth([...feed.channels].find((c) => c.startsWith("depth:")) || null);
  refreshDepthChoices();
}

$("subscribe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("channel");
  const names = input.value.split(/[\s,]+/).filter(Boolean);
  if (!names.length) return;
  if (!feed.connected) log.add("status", "not connected: the channels are sent when the connection opens");
  feed.subscribe(names);
  input.value = "";
});

$("connect").addEventListener("click", () => {
  if (feed.wanted) feed.disconnect();
  else feed.connect();
});

$("token").addEventListener("change", (e) => feed.setToken(e.target.value.trim()));

// --- the chart: history first, then the live channel ----------------------------------------

async function selectChart(symbol, interval) {
  const channel = `klines:${symbol}:${interval}`;
  if (channel === chart.channel) return;
  const previous = chart.channel;
  const request = ++chartRequest;
  chart.reset(channel, "loading history…");
  ensureOption($("chart-symbol"), symbol);
  $("chart-symbol").value = symbol;
  $("chart-interval").value = interval;
  if (previous) feed.unsubscribe([previous]);
  feed.subscribe([channel]);
  const query = new URLSearchParams({ symbol, interval, limit: String(HISTORY) });
  try {
    const response = await fetch(`/api/v1/klines?${query}`, { cache: "no-store" });
    const body = await response.json();
    if (request !== chartRequest) return; // the user switched meanwhile
    if (!body.success) throw new Error(body.error.message);
    chart.load(body.data);
    chart.setNote("");
  } catch (err) {
    if (request === chartRequest) chart.setNote(`no history: ${err.message || err}`);
  }
}

function chartPicked() {
  selectChart($("chart-symbol").value, $("chart-interval").value);
}

$("chart-symbol").addEventListener("change", chartPicked);
$("chart-interval").addEventListener("change", chartPicked);

function ensureOption(select, value) {
  if ([...select.options].some((o) => o.value === value)) return;
  const option = el("option", "", value);
  option.value = value;
  select.appendChild(option);
}

// --- depth: which subscribed book the ladder shows ------------------------------------------

function selectDepth(channel) {
  ladder.reset(channel);
  refreshDepthChoices();
}

function refreshDepthChoices() {
  const select = $("depth-channel");
  const books = [...feed.channels].filter((c) => c.startsWith("depth:"));
  select.replaceChildren(...books.map((c) => {
    const option = el("option", "", c);
    option.value = c;
    return option;
  }));
  select.hidden = books.length < 2;
  if (ladder.channel) select.value = ladder.channel;
}

$("depth-channel").addEventListener("change", (e) => selectDepth(e.target.value));

// --- symbols from the source: the chart picker and the subscribe suggestions -----------------

async function loadSymbols() {
  let symbols = [];
  try {
    const response = await fetch("/api/v1/symbols", { cache: "no-store" });
    const body = await response.json();
    if (!body.success) throw new Error(body.error.message);
    symbols = body.data.filter((s) => s.status === "TRADING").map((s) => s.symbol);
  } catch (err) {
    log.add("status", `symbol list unavailable: ${err.message || err}`);
    return;
  }
  const select = $("chart-symbol");
  const current = select.value;
  select.replaceChildren(...symbols.map((symbol) => {
    const option = el("option", "", symbol);
    option.value = symbol;
    return option;
  }));
  if (current) {
    ensureOption(select, current);
    select.value = current;
  }
  suggest(symbols.slice(0, SUGGESTED));
}

function suggest(symbols) {
  const kinds = ["price", "ticker", "trades", "depth", "klines"];
  const options = [];
  for (const symbol of symbols) {
    for (const kind of kinds) {
      const option = el("option");
      option.value = kind === "klines" ? `klines:${symbol}:1m` : `${kind}:${symbol}`;
      options.push(option);
    }
  }
  $("suggestions").replaceChildren(...options);
}

// --- status from HTTP: /health and /api/v1/ws/stats ---------------------------------------

function showStale() {
  const badge = $("stale");
  const names = new Set([...stale.keys(), ...((health && health.upstream.staleChannels) || [])]);
  badge.textContent = names.size ? `stale: ${[...names].join(", ")}` : "all live";
  badge.className = `badge state-${names.size ? "stale" : "live"}`;
}

async function poll() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    health = await response.json();
    const up = health.upstream || {};
    const badge = $("upstream");
    // a simulated market says so in capitals; a real source shows its name
    const source = up.simulated ? "SIMULATED market" : `${up.source || "?"} upstream`;
    badge.textContent = `${source} · ${health.status}`;
    badge.className = `badge ${up.simulated ? "simulated" : ""} state-${health.status === "ok" ? "live" : "stale"}`;
    showStale();
  } catch (err) {
    $("upstream").textContent = "gateway unreachable";
    $("upstream").className = "badge state-stale";
  }
  try {
    const response = await fetch("/api/v1/ws/stats", { cache: "no-store" });
    if (response.status === 401) {
      renderProtected($("stats"));
      return;
    }
    const body = await response.json();
    if (body.success) renderStats($("stats"), body.data);
  } catch { /* shown by the health badge */ }
}

function showChannels() {
  channelTable.render([...feed.channels].sort(), feed.channelStats, stale);
}

const channels = initialChannels();
const [chartSymbol, chartInterval] = initialChart(channels);
const isChart = (name) => name.toUpperCase() === `KLINES:${chartSymbol}:${chartInterval}`.toUpperCase();
selectDepth(null);
feed.subscribe(channels.filter((c) => !isChart(c)));
selectChart(chartSymbol, chartInterval);
feed.connect();
loadSymbols();
poll();
setInterval(poll, 2000);
setInterval(showChannels, 1000);
