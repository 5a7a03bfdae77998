// The tickwire dashboard: wires the feed to the views.
//
// Every server message goes through one `switch (msg.type)`; a type this page
// does not know throws, and the throw is caught and shown in the log so the
// page keeps running. `/?channels=a,b` chooses the channels subscribed on load
// (empty for none); otherwise the last set (localStorage) or a default set.

import { CandleChart } from "./chart.js";
import { Feed } from "./feed.js";
import { DepthLadder, Log, PriceTable, TradeTape, el, fmt, renderStats } from "./views.js";

const DEFAULT_CHANNELS = [
  "price:BTCUSDT", "price:ETHUSDT", "ticker:SOLUSDT", "klines:BTCUSDT:1s", "depth:BTCUSDT", "trades:BTCUSDT",
];
const SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT"];
const $ = (id) => document.getElementById(id);

const prices = new PriceTable($("prices"));
const chart = new CandleChart($("candles"));
const ladder = new DepthLadder($("depth"), $("depth-title"));
const tape = new TradeTape($("tape"));
const log = new Log($("log"));
const stale = new Map();
let health = null;

function initialChannels() {
  const query = new URLSearchParams(window.location.search);
  if (query.has("channels")) return query.get("channels").split(",").map((c) => c.trim()).filter(Boolean);
  try {
    const saved = JSON.parse(localStorage.getItem("tickwire.channels"));
    if (Array.isArray(saved)) return saved.filter((c) => typeof c === "string");
  } catch { /* no saved set */ }
  return DEFAULT_CHANNELS;
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
      if (msg.status === "stale") stale.set(msg.channel, msg.reason || "stale");
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
      if (!chart.channel) selectChart(msg.channel);
      if (msg.channel === chart.channel) chart.update(msg.data);
      if (logData && msg.data.isFinal) log.add("kline", msg.channel, `close ${fmt(msg.data.close)} final`);
      break;
    case "trade":
      tape.add(msg);
      if (logData) log.add("trade", msg.channel, `${msg.data.side} ${fmt(msg.data.quantity)} @ ${fmt(msg.data.price)}`);
      break;
    case "depth":
      if (!ladder.channel) ladder.reset(msg.channel);
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
  if (channel.startsWith("klines:")) refreshChartChoices();
}

function removeChip(channel) {
  for (const li of [...$("subscriptions").children]) if (li.dataset.channel === channel) li.remove();
}

function dropChannel(channel) {
  removeChip(channel);
  prices.remove(channel);
  stale.delete(channel);
  showStale();
  if (channel === chart.channel) selectChart([...feed.channels].find((c) => c.startsWith("klines:")) || null);
  if (channel === ladder.channel) ladder.reset([...feed.channels].find((c) => c.startsWith("depth:")) || null);
  refreshChartChoices();
}

function refreshChartChoices() {
  const select = $("chart-channel");
  const klines = [...feed.channels].filter((c) => c.startsWith("klines:"));
  select.replaceChildren(...klines.map((c) => {
    const option = el("option", "", c);
    option.value = c;
    return option;
  }));
  select.hidden = klines.length === 0;
  if (chart.channel) select.value = chart.channel;
}

function selectChart(channel) {
  chart.reset(channel);
  $("chart-title").textContent = channel ? "Candles" : "Candles (no klines channel)";
  refreshChartChoices();
}

$("chart-channel").addEventListener("change", (e) => selectChart(e.target.value));

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
    const body = await response.json();
    if (body.success) renderStats($("stats"), body.data);
  } catch { /* shown by the health badge */ }
}

function suggest() {
  const kinds = ["price", "ticker", "trades", "depth", "klines"];
  const options = [];
  for (const symbol of SYMBOLS) {
    for (const kind of kinds) {
      const option = el("option");
      option.value = kind === "klines" ? `klines:${symbol}:1m` : `${kind}:${symbol}`;
      options.push(option);
    }
  }
  $("suggestions").replaceChildren(...options);
}

suggest();
selectChart(null);
ladder.reset(null);
feed.subscribe(initialChannels());
feed.connect();
poll();
setInterval(poll, 2000);
