/**
 * Hubbub client for browsers and Node: one dependency-free ES module.
 *
 * Theory of operation: a {@link HubbubClient} owns one WebSocket at a time. It opens
 * the socket with the `hubbub.v1.json` subprotocol and authenticates; on a reconnect the
 * `auth` carries the cursor of the last durable event it processed and the streams it
 * had, so the hub replays what was missed first; only then is it `live` and are queued
 * calls sent. A lost socket
 * is retried with exponential backoff and full jitter, unless the hub closed it with a
 * code in 4500-4999 (token rejected, protocol error, flood), which would fail again; a
 * 4004 (the user holds too many connections: its `auth` got `conflict`) is retried too,
 * the delay growing until a connection of the user's closes.
 * A `resync` push puts the client in `resyncing` until every `resync` listener's
 * promise settles (they reload their views), then back to `live`.
 *
 * {@link LiveFeed} keeps one page of posts current from the pushes (insert, edit,
 * delete, counts; a `relation` push, the user's own block or mute made on any device,
 * drops that author's posts), plus who is online and the unread notification count,
 * and tells subscribers what changed so a UI can patch itself in place.
 *
 * @module hubbub
 */

/** The JSON subprotocol name; the version is part of it (SPEC section 2). */
export const SUBPROTOCOL_JSON = "hubbub.v1.json";

/** Close codes the hub sends (SPEC section 9). */
export const CloseCode = Object.freeze({
  DRAINING: 4000,
  SLOW: 4001,
  INTERNAL: 4002,
  AUTH_TIMEOUT: 4003,
  TOO_MANY_CONNECTIONS: 4004,
  UNAUTHORIZED: 4500,
  PROTOCOL_ERROR: 4501,
  FLOOD: 4502,
});

/** Longest post, in Unicode code points (SPEC section 10). */
export const MAX_POST_LENGTH = 500;

/**
 * Whether a close code allows reconnecting: 4500-4999 do not, everything else does.
 * @param {number} code
 * @returns {boolean}
 */
export function shouldReconnect(code) {
  return !(code >= 4500 && code <= 4999);
}

/**
 * Length of a text in Unicode code points, as the hub counts it.
 * @param {string} text
 * @returns {number}
 */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** An error reply from the hub, a timeout or a lost connection. */
export class HubbubError extends Error {
  /**
   * @param {string} code an error code of SPEC section 8, or `timeout`
   * @param {string} message
   * @param {number | null} [retryAfter] seconds, with `rate_limited`
   */
  constructor(code, message, retryAfter = null) {
    super(`${code}: ${message}`);
    this.name = "HubbubError";
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * The JSON codec: text frames, one message or a batch array per frame.
 * Keys keep the order they are given in, so requests built in canonical order
 * encode byte-for-byte like the reference encoder.
 */
export const jsonCodec = Object.freeze({
  subprotocol: SUBPROTOCOL_JSON,
  /**
   * @param {number} id @param {string} op @param {object} [args]
   * @returns {string}
   */
  encodeRequest(id, op, args = {}) {
    return JSON.stringify({ id, op, args });
  },
  /**
   * Decode a hub frame into its messages, classified by shape (SPEC section 3).
   * @param {string} frame
   * @returns {Array<{kind: "reply" | "error" | "event", message: object}>}
   */
  decode(frame) {
    const parsed = JSON.parse(frame);
    const items = Array.isArray(parsed) ? parsed : [parsed];
    return items.map((message) => {
      if (message === null || typeof message !== "object" || Array.isArray(message)) {
        throw new HubbubError("bad_request", "hub sent a message that is not a map");
      }
      const kind = "ev" in message ? "event" : "error" in message ? "error" : "reply";
      return { kind, message };
    });
  },
});

/** A minimal event emitter: `on` returns a function that removes the listener. */
export class Emitter {
  #listeners = new Map();

  /**
   * @param {string} type @param {(data: any) => unknown} listener
   * @returns {() => void} removes the listener
   */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Call every listener of `type`; returns what they returned (e.g. promises).
   * A throwing listener is reported on the console and does not stop the others.
   * @param {string} type @param {any} data
   * @returns {unknown[]}
   */
  emit(type, data) {
    const results = [];
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        results.push(listener(data));
      } catch (error) {
        console.error(`hubbub: a ${type} listener failed`, error);
      }
    }
    return results;
  }
}

/**
 * @typedef {"idle" | "connecting" | "live" | "reconnecting" | "resyncing" | "closed"} ConnectionState
 */

/**
 * A connection to a hub that survives reconnects. Events: `state` (a ConnectionState),
 * `event` (every push), one per push type (`feed.insert`, `post.update`, ...),
 * `ready` ({resumed}) each time a session goes live, and `closed` ({code, reason}) when
 * it gives up for good.
 */
export class HubbubClient extends Emitter {
  /**
   * @param {object} options
   * @param {string} options.url the hub's WebSocket URL, e.g. `ws://127.0.0.1:8765/`
   * @param {string | (() => string | Promise<string>)} options.token a token, or a function
   *   asked for one before every connection (to refresh expired ones)
   * @param {typeof WebSocket} [options.WebSocket] constructor; default `globalThis.WebSocket`
   * @param {number} [options.timeout] milliseconds a call waits for its reply (10000)
   * @param {number} [options.minDelay] first reconnect delay in ms (250)
   * @param {number} [options.maxDelay] longest reconnect delay in ms (8000)
   * @param {() => number} [options.random] jitter source in [0, 1) (Math.random)
   */
  constructor({ url, token, WebSocket: Socket = globalThis.WebSocket, timeout = 10000,
    minDelay = 250, maxDelay = 8000, random = Math.random }) {
    super();
    if (typeof Socket !== "function") throw new TypeError("no WebSocket constructor available");
    Object.assign(this, { url, timeout, minDelay, maxDelay, random });
    this.Socket = Socket;
    this.tokenSource = typeof token === "function" ? token : () => token;
    /** @type {ConnectionState} */
    this.state = "idle";
    /** The signed-in user's Profile, after the first `auth`. */
    this.user = null;
    /** Cursor of the last durable event processed (or of the last `auth`). */
    this.cursor = null;
    this.streams = new Set();
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map();
    this.waiting = [];
    this.attempt = 0;
    this.retryTimer = null;
  }

  /**
   * Open the connection; resolves with the user's Profile once live, rejects when the
   * hub refuses for good (e.g. `unauthorized`).
   * @returns {Promise<object>}
   */
  connect() {
    if (this.state === "idle" || this.state === "closed") this.#open();
    return this.#whenLive().then(() => this.user);
  }

  /** Close for good: no reconnect; pending calls fail with `closed`. */
  close() {
    clearTimeout(this.retryTimer);
    this.#setState("closed");
    this.socket?.close(1000, "client closed");
    this.#failAll(new HubbubError("closed", "client closed"));
  }

  /**
   * Send one request once the connection is live; resolves with its result.
   * @param {string} op @param {object} [args] @param {{timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  async call(op, args = {}, { timeout = this.timeout } = {}) {
    const deadline = Date.now() + timeout;
    await withTimeout(this.#whenLive(), timeout, op);
    return this.#send(op, args, Math.max(0, deadline - Date.now()));
  }

  /** @param {string} stream `public`, `tag:<tag>` or `thread:<id>`; kept across reconnects */
  async subscribe(stream) {
    this.streams.add(stream);
    return this.call("subscribe", { stream });
  }

  /** @param {string} stream */
  async unsubscribe(stream) {
    this.streams.delete(stream);
    return this.call("unsubscribe", { stream });
  }

  /** @param {string} text @param {number} [replyTo] */
  post(text, replyTo) {
    return this.call("post", replyTo ? { text, reply_to: replyTo } : { text });
  }

  /** @param {number} post @param {string} text */
  edit(post, text) { return this.call("edit", { post, text }); }
  /** @param {number} post */
  deletePost(post) { return this.call("delete", { post }); }
  /** @param {number} post */
  getPost(post) { return this.call("post.get", { post }); }
  /** @param {number} post */
  like(post) { return this.#setLike("like", post); }
  /** @param {number} post */
  unlike(post) { return this.#setLike("unlike", post); }

  /**
   * Like or unlike, then emit a local `post.update` `{id, likes, liked}` (cursor-less):
   * the hub's count updates go to everyone and do not say who liked, so this is how a
   * `LiveFeed` learns the viewer's own `liked`.
   */
  async #setLike(op, post) {
    const result = await this.call(op, { post });
    this.emit("post.update", { id: post, likes: result.likes, liked: result.liked });
    return result;
  }
  /** @param {string} user */
  follow(user) { return this.call("follow", { user }); }
  /** @param {string} user */
  unfollow(user) { return this.call("unfollow", { user }); }
  /** @param {string} user */
  profile(user) { return this.call("profile.get", { user }); }

  /**
   * Block `user`: follows both ways end, each stops seeing the other, and follows,
   * replies and likes between the two are refused with `blocked`. Every connection of
   * this user then gets a `relation` push.
   * @param {string} user
   */
  block(user) { return this.call("block", { user }); }
  /** @param {string} user */
  unblock(user) { return this.call("unblock", { user }); }

  /**
   * Hide `user`'s posts and notifications from this user, silently.
   * @param {string} user
   * @param {number | Date | null} [until] when the mute ends by itself (ms since the
   *   epoch, or a Date; in the future); none: until `unmute`
   */
  mute(user, until = null) {
    const args = { user };
    if (until !== null && until !== undefined) args.until = until instanceof Date ? until.getTime() : until;
    return this.call("mute", args);
  }

  /** @param {string} user */
  unmute(user) { return this.call("unmute", { user }); }

  /**
   * A page of the users this user blocked, most recent first: `{items: [{user, until}], next}`.
   * @param {{before?: string | null, limit?: number}} [page]
   */
  blocks(page = {}) { return this.call("blocks", pageArgs(page)); }

  /**
   * A page of this user's mutes in effect, most recent first (`until`: ms or null).
   * @param {{before?: string | null, limit?: number}} [page]
   */
  mutes(page = {}) { return this.call("mutes", pageArgs(page)); }

  #open() {
    this.#setState(this.attempt === 0 && !this.user ? "connecting" : "reconnecting");
    let socket;
    try {
      socket = new this.Socket(this.url, SUBPROTOCOL_JSON);
    } catch (error) {
      this.#giveUp(1002, String(error));
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.#start(socket).catch((error) => this.#startFailed(socket, error));
    socket.onmessage = (message) => this.#receive(message.data);
    let lost = false;
    const onLost = (code, reason) => {
      if (lost) return;
      lost = true;
      this.#closed(socket, code, reason);
    };
    socket.onclose = (closed) => onLost(closed.code, closed.reason);
    // Some implementations (Node 20's) fire only `error` when the connection fails.
    socket.onerror = () => socket.readyState !== 1 && onLost(1006, "connection failed");
  }

  async #start(socket) {
    const token = await this.tokenSource();
    const resumed = this.user !== null;
    const args = { token };
    if (resumed) {
      // Resume atomically: the hub replays what was missed before its reply and
      // before any live event (SPEC section 6).
      if (this.cursor !== null) args.cursor = this.cursor;
      if (this.streams.size) args.streams = [...this.streams];
    }
    const auth = await this.#send("auth", args, this.timeout);
    this.user = auth.user;
    const resync = resumed && (this.cursor === null || Boolean(auth.resync));
    if (auth.cursor) this.cursor = auth.cursor;
    if (resync) await this.#resync({ reason: "reconnected without a usable cursor" });
    if (socket !== this.socket) return;
    this.attempt = 0;
    this.#setState("live");
    this.emit("ready", { resumed });
    for (const resolve of this.waiting.splice(0)) resolve.ok();
  }

  #startFailed(socket, error) {
    if (error instanceof HubbubError && error.code === "unauthorized") {
      this.#giveUp(CloseCode.UNAUTHORIZED, error.message);
    }
    socket.close(4002, "start failed");
  }

  async #resync(data) {
    this.#setState("resyncing");
    await Promise.allSettled(this.emit("resync", data));
  }

  #send(op, args, timeout) {
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.socket.send(jsonCodec.encodeRequest(id, op, args));
    return withTimeout(reply, timeout, op).finally(() => this.pending.delete(id));
  }

  #receive(frame) {
    let messages;
    try {
      messages = jsonCodec.decode(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
    } catch (error) {
      console.error("hubbub: undecodable frame from the hub", error);
      return;
    }
    for (const { kind, message } of messages) {
      if (kind === "event") {
        this.#event(message);
        continue;
      }
      const waiter = this.pending.get(message.re);
      if (!waiter) continue;
      if (kind === "reply") waiter.resolve(message.result);
      else {
        const { code, message: text, retry_after: retryAfter = null } = message.error;
        waiter.reject(new HubbubError(code, text, retryAfter));
      }
    }
  }

  #event({ ev, cursor, data }) {
    const event = { type: ev, cursor, data };
    if (ev === "resync" && this.state === "live") {
      this.#resync(data).then(() => this.state === "resyncing" && this.#setState("live"));
    } else if (ev !== "resync") {
      this.emit(ev, data);
    }
    this.emit("event", event);
    if (cursor !== null && cursor !== undefined) this.cursor = cursor;
  }

  #closed(socket, code, reason) {
    if (socket !== this.socket) return;
    this.#failAll(new HubbubError("unavailable", "connection lost before the reply"), false);
    if (this.state === "closed") return;
    if (!shouldReconnect(code)) {
      this.#giveUp(code, reason);
      return;
    }
    const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    this.attempt += 1;
    this.#setState("reconnecting");
    this.retryTimer = setTimeout(() => this.#open(), ceiling / 2 + this.random() * ceiling / 2);
  }

  #giveUp(code, reason) {
    if (this.state === "closed") return;
    this.#setState("closed");
    const error = new HubbubError(code === CloseCode.UNAUTHORIZED ? "unauthorized" : "closed",
      `hub closed the connection (${code}${reason ? ": " + reason : ""})`);
    this.#failAll(error);
    this.emit("closed", { code, reason });
  }

  #failAll(error, waitingToo = true) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    if (waitingToo) for (const waiter of this.waiting.splice(0)) waiter.fail(error);
  }

  #whenLive() {
    if (this.state === "live" || this.state === "resyncing") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new HubbubError("closed", "client closed"));
    return new Promise((ok, fail) => this.waiting.push({ ok, fail }));
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }
}

/** Page arguments without the absent ones. */
function pageArgs({ before = null, limit = null }) {
  const args = {};
  if (before !== null) args.before = before;
  if (limit !== null) args.limit = limit;
  return args;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new HubbubError("timeout", `${what}: no reply in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One live list of posts (the home feed, or a stream such as `public`), the online
 * followees and the unread notification count. Subscribers get change records:
 * `{type: "reset"}`, `{type: "insert", post}`, `{type: "update", post}`,
 * `{type: "delete", id}`, `{type: "presence", user, online}`, `{type: "unread", unread}`.
 * A `relation` push that hides a user (this user blocked or muted them, here or in
 * another tab) gives a `delete` per post of theirs; lifting one reloads (`reset`).
 */
export class LiveFeed extends Emitter {
  /**
   * @param {HubbubClient} client
   * @param {object} [options]
   * @param {string} [options.op] the paging operation (`feed.home`)
   * @param {object} [options.args] its extra arguments
   * @param {string} [options.stream] take inserts from this subscribed stream instead of
   *   the home feed's `feed.insert`
   * @param {number} [options.limit] page size (20)
   */
  constructor(client, { op = "feed.home", args = {}, stream = null, limit = 20 } = {}) {
    super();
    Object.assign(this, { client, op, args, stream, limit });
    /** @type {Map<number, object>} posts by id */
    this.byId = new Map();
    /** @type {Set<string>} users known to be online among those tracked */
    this.online = new Set();
    this.tracked = [];
    this.unread = 0;
    this.stops = [
      stream
        ? client.on("stream.insert", (d) => d.stream === stream && this.#insert(d.post))
        : client.on("feed.insert", (post) => this.#insert(post)),
      client.on("post.update", (patch) => this.#update(patch)),
      client.on("post.delete", ({ id }) => {
        if (this.byId.delete(id)) this.emit("change", { type: "delete", id });
      }),
      client.on("presence", ({ user, online }) => this.#presence(user, online)),
      client.on("notification", ({ unread }) => this.#unread(unread)),
      client.on("relation", (change) => this.#relation(change)),
      client.on("resync", () => this.load()),
      client.on("ready", ({ resumed }) => {
        if (resumed) this.trackPresence(this.tracked).catch(() => {});
      }),
    ];
  }

  /** Posts, newest first. @returns {object[]} */
  get posts() {
    return [...this.byId.values()].sort((a, b) => b.id - a.id);
  }

  /**
   * Listen to changes; returns the function that stops listening.
   * @param {(change: object) => void} listener
   */
  subscribe(listener) {
    return this.on("change", listener);
  }

  /** (Re)load the first page, the unread count and the tracked users' presence. */
  async load() {
    const [page, notes] = await Promise.all([
      this.client.call(this.op, { ...this.args, limit: this.limit }),
      this.client.call("notifications", { limit: 1 }),
    ]);
    this.byId = new Map(page.items.map((post) => [post.id, post]));
    this.unread = notes.unread;
    this.emit("change", { type: "reset" });
    await this.trackPresence(this.tracked);
  }

  /**
   * Follow the presence of these users (e.g. one's followees), at most 100.
   * @param {string[]} users
   */
  async trackPresence(users) {
    this.tracked = users.slice(0, 100);
    const { online } = this.tracked.length
      ? await this.client.call("presence", { users: this.tracked })
      : { online: [] };
    this.online = new Set(online);
    this.emit("change", { type: "presence" });
  }

  /** Mark every notification read. */
  async markRead() {
    const { unread } = await this.client.call("notifications.read", {});
    this.#unread(unread);
  }

  /** Stop listening to the client. */
  dispose() {
    for (const stop of this.stops) stop();
  }

  #insert(post) {
    if (this.byId.has(post.id)) return;
    this.byId.set(post.id, post);
    this.emit("change", { type: "insert", post });
  }

  #update(patch) {
    const post = this.byId.get(patch.id);
    if (!post) return;
    const merged = { ...post, ...patch };
    this.byId.set(patch.id, merged);
    this.emit("change", { type: "update", post: merged });
  }

  #presence(user, online) {
    if (online) this.online.add(user);
    else this.online.delete(user);
    this.emit("change", { type: "presence", user, online });
  }

  /** One's own block or mute changed: hide the user now, or show them again by reloading. */
  #relation({ user, blocked, muted }) {
    if (!blocked && !muted) {
      this.load().catch(() => {});
      return;
    }
    for (const post of [...this.byId.values()]) {
      if (post.author !== user) continue;
      this.byId.delete(post.id);
      this.emit("change", { type: "delete", id: post.id });
    }
    if (blocked) { // the block ended the follows: the user's presence is hidden too
      this.tracked = this.tracked.filter((tracked) => tracked !== user);
      if (this.online.delete(user)) this.emit("change", { type: "presence", user, online: false });
    }
  }

  #unread(unread) {
    this.unread = unread;
    this.emit("change", { type: "unread", unread });
  }
}
