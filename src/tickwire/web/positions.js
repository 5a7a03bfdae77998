// Where the dashboard stands in each channel: (epoch, seq), for resuming after a reconnect.
//
// The same rules as the Python client's tickwire.client.positions
// (docs/resume.md): the epoch comes from each `subscribed` ack; the seq from
// the ack (the channel's position when nothing is replayed) and then from
// every data message. On a reconnect the feed sends them as the `since` map of
// its subscribe, and each ack of that subscribe says how it went
// (`wasRecovering`): recovered with N messages replayed, or not, and why.
// The seq kept here is also the one the feed checks for gaps. Pure: no DOM,
// no socket.

export class Positions {
  constructor() {
    this.epochs = new Map(); // channel -> epoch of its last ack
    this.seqs = new Map(); // channel -> the last seq seen (ack or data)
  }

  // a `subscribed` ack: take its position; after a `since`, returns
  // {channel, recovered: true, replayed} or {channel, recovered: false, reason}, else null
  acked(msg) {
    if (typeof msg.epoch !== "string" || typeof msg.seq !== "number") return null; // a gateway before v1.1
    this.epochs.set(msg.channel, msg.epoch);
    // a replay brings the seq up to the ack's message by message: the gap check follows it
    if (!(msg.recovered && msg.replayed)) this.seqs.set(msg.channel, msg.seq);
    if (!msg.wasRecovering) return null;
    if (msg.recovered) return { channel: msg.channel, recovered: true, replayed: msg.replayed || 0 };
    return { channel: msg.channel, recovered: false, reason: msg.reason || "unknown" };
  }

  // a data message's seq; returns the previous one (undefined when there was none)
  seen(channel, seq) {
    const last = this.seqs.get(channel);
    this.seqs.set(channel, seq);
    return last;
  }

  forget(channel) {
    this.epochs.delete(channel);
    this.seqs.delete(channel);
  }

  // the `since` map for `names`: those with a known position that `resumable(name)` allows; null if none
  since(names, resumable = () => true) {
    const found = {};
    let any = false;
    for (const name of names) {
      const epoch = this.epochs.get(name);
      const seq = this.seqs.get(name);
      if (epoch === undefined || seq === undefined || !resumable(name)) continue;
      found[name] = { epoch, seq };
      any = true;
    }
    return any ? found : null;
  }
}
