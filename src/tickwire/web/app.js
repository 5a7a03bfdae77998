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
// subscribes to itself. It opens on the first klines channel of `?channels=`,
// else on its last pick (saved apart from the list), else on BTCUSDT 1m.
// Symbols come from /api/v1/symbols, so the pickers list what the source has.
//
// Why a channel is subscribed: the user's list (`userChannels`: what was typed
// in the box or named on load, by the canonical names of the acks to those
// subscribes, which the feed hands back tagged USER) and the chart's channel
// are two separate reasons; the socket holds their union. Switching the chart
// drops only the chart's reason and removing a chip only the user's; a channel
// is unsubscribed when no reason is left. So a channel both want stays
// subscribed, and listed, whichever of them lets go first. A chip the chart
// alone holds says "chart" and has no ×: switching the chart leaves it. Should
// a reason come back while an unsubscribe is on its way, the ack of that
// unsubscribe subscribes again: the socket always converges on the union.

import { BookPanel } from "./bookpanel.js";
import { CandleChart } from "./chart.js";
import { Feed } from "./feed.js";
import {
  ChannelTable, DepthLadder, Log, PriceTable, TradeTape, el, fmt, renderProtected, renderStats,
} from "./views.js";

const DEFAULT_CHANNELS = ["price:BTCUSDT", "price:ETHUSDT", "ticker:SOLUSDT", "depth:BTCUSDT", "trades:BTCUSDT"];
const DEFAULT_CHART = ["BTCUSDT", "1m"];
const USER = "user"; // the tag of the user's own subscribes
const HISTORY = 500; // candles fetched when the chart opens
const SUGGESTED = 60; // symbols offered in the subscribe box
const $ = (id) => document.getElementById(id);

const prices = new PriceTable($("prices"));
const chart = new CandleChart($("candles"));
const ladder = new DepthLadder($("depth"), $("depth-title"));
const bookPanel = new BookPanel($("book-panel"), {
  ladder: $("book-ladder"),
  chart: $("book-chart"),
  title: $("book-title"),
  status: $("book-status"),
  onResync: (channel) => {
    log.add("gap", `${channel}: book out of step, asking for its snapshot`, bookPanel.book.problem);
    feed.subscribe([channel]); // a subscribe to a channel held re-sends the snapshot
  },
});
const tape = new TradeTape($("tape"));
const log = new Log($("log"));
const channelTable = new ChannelTable($("channel-stats"));
const stale = new Map(); // channel -> {reason, since}
const userChannels = new Set(); // the user's list: canonical names
let health = null;
let chartRequest = 0;

function loadSaved(key) {
  try {
    return JSON.parse(localStorage.getItem(key));
  } catch {
    return null; // nothing saved, or private mode
  }
}

function initialChannels() {
  const query = new URLSearchParams(window.location.search);
  if (query.has("channels")) return query.get("channels").split(",").map((c) => c.trim()).filter(Boolean);
  const saved = loadSaved("tickwire.channels");
  return Array.isArray(saved) ? saved.filter((c) => typeof c === "string") : DEFAULT_CHANNELS;
}

function firstKlines(names) {
  for (const name of names) {
    const [kind, symbol, interval] = name.split(":");
    if (kind === "klines" && symbol && interval) return [symbol.toUpperCase(), interval];
  }
  return null;
}

function initialChart(names) {
  const asked = new URLSearchParams(window.location.search).has("channels") && firstKlines(names);
  const saved = loadSaved("tickwire.chart");
  const pick = Array.isArray(saved) && saved.length === 2 && saved.every((s) => typeof s === "string") && saved;
  // firstKlines of a saved list: one saved before the chart's pick had a key of its own,
  // when the list held the chart's channel too (it is on the user's list now)
  return asked || pick || firstKlines(names) || DEFAULT_CHART;
}

function saveChannels() {
  try {
    localStorage.setItem("tickwire.channels", JSON.stringify([...userChannels]));
  } catch { /* private mode */ }
}

function saveChart(symbol, interval) {
  try {
    localStorage.setItem("tickwire.chart", JSON.stringify([symbol, interval]));
  } catch { /* private mode */ }
}

// --- the connection ----------------------------------------------------------------

const feed = new Feed({
  onMessage: (msg, tag) => {
    try {
      handle(msg, tag);
    } catch (err) {
      log.add("error", String(err.message || err));
    }
  },
  onState: showConnection,
  onGap: (gap) => log.add("gap", `${gap.channel}: ${gap.missed} missed`, `seq ${gap.after} → ${gap.seq}`),
  // a reconnect's subscribe carried `since`: what the gateway made of it, per channel
  onResume: ({ channel, recovered, replayed, reason }) => {
    log.add(recovered ? "resumed" : "lost", `${channel}: ${recovered ? `resumed ${replayed}` : `not recovered: ${reason}`}`);
  },
  // a book resumes only from a valid local copy: otherwise it wants the snapshot
  resumable: (channel) => channel !== bookPanel.channel || bookPanel.resumable,
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
  if (state !== "live" && state !== "connecting") bookPanel.invalidate();
}

// --- messages -----------------------------------------------------------------------

// tag: USER when msg answers one of the user's own subscribes
function handle(msg, tag) {
  const logData = $("log-data").checked;
  switch (msg.type) {
    case "connected":
      log.add("connected", `as ${msg.clientId}`, msg.authenticated ? `user ${msg.userId}` : "anonymous");
      break;
    case "subscribed":
      if (tag === USER) {
        userChannels.add(msg.channel);
        saveChannels();
      }
      showChip(msg.channel);
      if (msg.channel === bookPanel.channel) bookPanel.acked(msg);
      log.add("subscribed", msg.channel);
      break;
    case "unsubscribed":
      unsubscribed(msg.channel, msg.reason);
      log.add("unsubscribed", msg.channel, msg.reason);
      break;
    case "error":
      log.add("error", `${msg.code}: ${msg.message}`, msg.channel);
      if (msg.channel) {
        if (userChannels.delete(msg.channel)) saveChannels(); // refused: not on the list
        removeChip(msg.channel);
        if (msg.channel === bookPanel.channel) bookPanel.refused(msg.message);
      }
      break;
    case "status":
      if (msg.status === "stale") stale.set(msg.channel, { reason: msg.reason || "stale", since: Date.now() });
      else stale.delete(msg.channel);
      prices.setState(msg.channel, msg.status, msg.reason);
      bookPanel.apply(msg);
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
    case "book":
      if (!bookPanel.channel) selectBook(...msg.channel.split(":").slice(1), false);
      bookPanel.apply(msg);
      if (logData && msg.snapshot) log.add("book", msg.channel, `snapshot #${msg.seq}${msg.reset ? " (reset)" : ""}`);
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

// the chip of a subscribed channel, made or redone in place: its reasons in data-reasons
// ("user", "chart"); a × unless the chart alone holds the channel
function showChip(channel) {
  const list = $("subscriptions");
  const old = [...list.children].find((li) => li.dataset.channel === channel);
  const chip = el("li", "chip");
  chip.dataset.channel = channel;
  const panel = panelOf(channel);
  const charted = Boolean(panel);
  chip.dataset.reasons = [userChannels.has(channel) && "user", panel].filter(Boolean).join(" ");
  chip.append(el("span", "", channel));
  if (charted) {
    const mark = el("span", "mark", panel);
    mark.title = `the ${panel} panel shows this channel: it stays subscribed while the panel does`;
    chip.append(mark);
  }
  if (!charted || userChannels.has(channel)) {
    const remove = el("button", "remove", "×");
    remove.type = "button";
    remove.title = `unsubscribe ${channel}`;
    remove.setAttribute("aria-label", `unsubscribe ${channel}`);
    remove.addEventListener("click", () => leave(channel));
    chip.append(remove);
  }
  if (old) old.replaceWith(chip);
  else list.appendChild(chip);
  if (!old && channel.startsWith("depth:")) refreshDepthChoices();
}

// which panel holds `channel` for itself ("chart", "book"), if any: a reason apart from the user's
function panelOf(channel) {
  if (channel === chart.channel) return "chart";
  if (channel === bookPanel.channel) return "book";
  return "";
}

// a chip's ×: the user's reason goes; the socket lets go only if no panel shows it
function leave(channel) {
  if (userChannels.delete(channel)) saveChannels();
  if (panelOf(channel)) showChip(channel);
  else feed.unsubscribe([channel]);
}

// the chart's reason goes: the socket lets go only if the user's list does not have it
// (nor will have it: the user's subscribe of it may still be waiting for its ack)
function release(channel) {
  if (userChannels.has(channel) || panelOf(channel)) showChip(channel);
  else if (!feed.asking(channel, USER)) feed.unsubscribe([channel]);
}

function unsubscribed(channel, reason) {
  if (reason) {
    // the server ended it (a new identity, say): off the user's list too
    if (userChannels.delete(channel)) saveChannels();
  } else if (userChannels.has(channel) || panelOf(channel)) {
    // the ack of our own unsubscribe, but a reason came back meanwhile: subscribe again
    // (unless that reason's subscribe is on its way already)
    dropChannel(channel);
    if (!feed.asking(channel, undefined) && !feed.asking(channel, USER)) feed.subscribe([channel]);
    return;
  }
  dropChannel(channel);
  if (channel === chart.channel) chart.setNote(`not live: the chart's channel was ended (${reason})`);
}

function removeChip(channel) {
  for (const li of [...$("subscriptions").children]) if (li.dataset.channel === channel) li.remove();
}

function dropChannel(channel) {
  removeChip(channel);
  prices.remove(channel);
  stale.delete(channel);
  showStale();
  if (channel === ladder.channel) selectDepth([...feed.channels].find((c) => c.startsWith("depth:")) || null);
  refreshDepthChoices();
}

$("subscribe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("channel");
  const names = input.value.split(/[\s,]+/).filter(Boolean);
  if (!names.length) return;
  if (!feed.connected) log.add("status", "not connected: the channels are sent when the connection opens");
  feed.subscribe(names, USER);
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
  saveChart(symbol, interval);
  ensureOption($("chart-symbol"), symbol);
  $("chart-symbol").value = symbol;
  $("chart-interval").value = interval;
  if (previous) release(previous);
  if (feed.channels.has(channel)) showChip(channel); // held for the user already: now for both
  else feed.subscribe([channel]);
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

// --- the order book panel: its own channel, picked by symbol and depth ------------------------

function selectBook(symbol, depth = "100", subscribe = true) {
  const channel = `book:${symbol.toUpperCase()}:${depth}`;
  if (channel === bookPanel.channel) return;
  const previous = bookPanel.channel;
  bookPanel.reset(channel);
  try {
    localStorage.setItem("tickwire.book", JSON.stringify([symbol.toUpperCase(), String(depth)]));
  } catch { /* private mode */ }
  ensureOption($("book-symbol"), symbol.toUpperCase());
  $("book-symbol").value = symbol.toUpperCase();
  $("book-depth").value = String(depth);
  if (previous) release(previous);
  if (feed.channels.has(channel)) showChip(channel);
  // held already or not, subscribe: the ack brings the snapshot the panel's new book starts from
  // (adopting a book the user subscribed, the message at hand is that snapshot, or says "resync")
  if (subscribe) feed.subscribe([channel]);
}

// the book the panel opens on: the first book: channel named, else its last pick, else none
function initialBook(names) {
  const named = names.map((n) => n.split(":")).find((parts) => parts[0] === "book" && parts[1]);
  if (named) return [named[1], named[2] || "100"];
  const saved = loadSaved("tickwire.book");
  return Array.isArray(saved) && saved.length === 2 && saved.every((s) => typeof s === "string") ? saved : null;
}

function bookPicked() {
  if ($("book-symbol").value) selectBook($("book-symbol").value, $("book-depth").value);
}

$("book-symbol").addEventListener("change", bookPicked);
$("book-depth").addEventListener("change", bookPicked);

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
  const books = $("book-symbol");
  const picked = books.value;
  const placeholder = el("option", "", "symbol");
  placeholder.value = "";
  books.replaceChildren(placeholder, ...symbols.map((symbol) => {
    const option = el("option", "", symbol);
    option.value = symbol;
    return option;
  }));
  if (picked) {
    ensureOption(books, picked);
    books.value = picked;
  }
  suggest(symbols.slice(0, SUGGESTED));
}

function suggest(symbols) {
  const kinds = ["price", "ticker", "trades", "depth", "klines", "book"];
  const options = [];
  for (const symbol of symbols) {
    for (const kind of kinds) {
      const option = el("option");
      option.value = kind === "klines" ? `klines:${symbol}:1m` : kind === "book" ? `book:${symbol}:20` : `${kind}:${symbol}`;
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
selectDepth(null);
selectChart(...initialChart(channels));
const firstBook = initialBook(channels);
if (firstBook) selectBook(...firstBook);
feed.subscribe(channels, USER); // all of them the user's, the chart's channel too if named
feed.connect();
loadSymbols();
poll();
setInterval(poll, 2000);
setInterval(showChannels, 1000);
