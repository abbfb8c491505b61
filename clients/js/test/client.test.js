// The client's state machine against a scripted fake socket: auth first, resume,
// backoff with jitter, close codes, timeouts and a LiveFeed fed by pushes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { codePoints, HubbubClient, LiveFeed, shouldReconnect } from "../hubbub.js";

/** A WebSocket stand-in: records what the client sends, lets the test answer. */
class FakeSocket {
  static made = [];
  constructor(url, protocol) {
    Object.assign(this, { url, protocol, sent: [], closed: null });
    FakeSocket.made.push(this);
    queueMicrotask(() => this.onopen?.());
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = "") { this.hubCloses(code, reason); }
  hubSends(message) { this.onmessage({ data: JSON.stringify(message) }); }
  hubCloses(code, reason = "") {
    if (this.closed) return;
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
  /** Answer the newest request with `result`. */
  reply(result) { this.hubSends({ re: this.sent.at(-1).id, result }); }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const USER = { id: "alice", name: "alice", bio: "", followers: 0, following: 0, posts: 0, created_at: 1 };

function fakeClient(options = {}) {
  FakeSocket.made = [];
  return new HubbubClient({ url: "ws://hub/", token: "t0k", WebSocket: FakeSocket, random: () => 0.5, ...options });
}

async function signIn(client, cursor = "7") {
  const connected = client.connect();
  await tick();
  const socket = FakeSocket.made.at(-1);
  assert.deepEqual(socket.sent.at(-1), { id: socket.sent.at(-1).id, op: "auth", args: { token: "t0k" } });
  socket.reply({ user: USER, cursor });
  assert.deepEqual(await connected, USER);
  return socket;
}

test("authenticates first with the JSON subprotocol, then calls resolve by id", async () => {
  const client = fakeClient();
  const states = [];
  client.on("state", (s) => states.push(s));
  const socket = await signIn(client);
  assert.equal(socket.protocol, "hubbub.v1.json");
  const pong = client.call("ping");
  await tick();
  socket.reply({ time: 5 });
  assert.deepEqual(await pong, { time: 5 });
  assert.deepEqual(states, ["connecting", "live"]);
  client.close();
});

test("error replies reject with the hub's code and retry_after", async () => {
  const client = fakeClient();
  const socket = await signIn(client);
  const post = client.post("hi");
  await tick();
  socket.hubSends({ re: socket.sent.at(-1).id, error: { code: "rate_limited", message: "slow down", retry_after: 1.5 } });
  await assert.rejects(post, { code: "rate_limited", retryAfter: 1.5 });
  client.close();
});

test("a call without a reply times out", async () => {
  const client = fakeClient({ timeout: 20 });
  await signIn(client);
  await assert.rejects(client.call("ping"), { code: "timeout" });
  client.close();
});

test("reconnects with backoff and resumes from the last cursor with its streams in auth", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = fakeClient({ minDelay: 100, maxDelay: 1000 });
  const socket = await signIn(client);
  const sub = client.subscribe("public");
  await tick();
  socket.reply({ stream: "public", subscribed: true });
  await sub;
  socket.hubSends({ ev: "feed.insert", cursor: "9", data: { id: 1 } });
  assert.equal(client.cursor, "9");
  socket.hubCloses(4000, "draining");
  assert.equal(client.state, "reconnecting");
  t.mock.timers.tick(74); // half the ceiling plus half the jitter: 50 + 0.5 * 50 = 75 ms
  assert.equal(FakeSocket.made.length, 1);
  t.mock.timers.tick(1);
  assert.equal(FakeSocket.made.length, 2);
  const again = FakeSocket.made[1];
  await tick();
  assert.deepEqual(again.sent.at(-1).op, "auth");
  assert.deepEqual(again.sent.at(-1).args, { token: "t0k", cursor: "9", streams: ["public"] });
  again.hubSends({ ev: "feed.insert", cursor: "10", data: { id: 2 } });
  again.reply({ user: USER, replayed: 1, cursor: "11" });
  await tick();
  assert.equal(client.state, "live");
  assert.equal(client.cursor, "11");
  client.close();
});

test("the backoff doubles up to its ceiling while the hub stays away", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = fakeClient({ minDelay: 100, maxDelay: 400, random: () => 0 });
  await signIn(client);
  const delays = [];
  for (let i = 0; i < 4; i += 1) {
    FakeSocket.made.at(-1).hubCloses(1006);
    let waited = 0;
    const before = FakeSocket.made.length;
    while (FakeSocket.made.length === before) {
      t.mock.timers.tick(1);
      waited += 1;
    }
    delays.push(waited);
  }
  assert.deepEqual(delays, [50, 100, 200, 200]);
  client.close();
});

test("too many connections (4004): the refused auth is retried with a growing backoff", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = fakeClient({ minDelay: 100, maxDelay: 1000, random: () => 0 });
  await signIn(client);
  FakeSocket.made.at(-1).hubCloses(1006);
  for (const delay of [50, 100]) { // half of each doubling ceiling (no jitter here)
    const before = FakeSocket.made.length;
    t.mock.timers.tick(delay - 1);
    assert.equal(FakeSocket.made.length, before);
    t.mock.timers.tick(1);
    const socket = FakeSocket.made.at(-1);
    await tick();
    assert.equal(socket.sent.at(-1).op, "auth");
    socket.hubSends({ re: socket.sent.at(-1).id, error: { code: "conflict", message: "alice holds 1 connection" } });
    socket.hubCloses(4004, "too many connections of this user");
    await tick();
    assert.equal(client.state, "reconnecting");
  }
  t.mock.timers.tick(200);
  const last = FakeSocket.made.at(-1);
  await tick();
  last.reply({ user: USER, replayed: 0, cursor: "8" });
  await tick();
  assert.equal(client.state, "live");
  assert.equal(FakeSocket.made.length, 4);
  client.close();
});

test("a rejected token closes for good: no reconnect", async () => {
  const client = fakeClient();
  const closed = new Promise((resolve) => client.on("closed", resolve));
  const connected = client.connect();
  await tick();
  const socket = FakeSocket.made[0];
  socket.hubSends({ re: socket.sent[0].id, error: { code: "unauthorized", message: "token expired" } });
  socket.hubCloses(4500, "token rejected");
  await assert.rejects(connected, { code: "unauthorized" });
  assert.equal((await closed).code, 4500);
  assert.equal(client.state, "closed");
  assert.equal(FakeSocket.made.length, 1);
  assert.equal(shouldReconnect(4499), true);
  assert.equal(shouldReconnect(4999), false);
});

test("a resync push reloads the feed before going live again", async () => {
  const client = fakeClient();
  const socket = await signIn(client);
  const feed = new LiveFeed(client);
  const states = [];
  client.on("state", (s) => states.push(s));
  socket.hubSends({ ev: "resync", cursor: null, data: { reason: "too far behind" } });
  assert.equal(client.state, "resyncing");
  await tick();
  socket.reply({ items: [], next: null, unread: 3 }); // notifications (sent last)
  socket.hubSends({ re: socket.sent.at(-2).id, result: { items: [{ id: 5, likes: 0 }], next: null } });
  await tick();
  await tick();
  assert.deepEqual(states, ["resyncing", "live"]);
  assert.deepEqual(feed.posts.map((p) => p.id), [5]);
  assert.equal(feed.unread, 3);
  client.close();
});

test("LiveFeed applies inserts once, merges updates, drops deletes, tracks presence", async () => {
  const client = fakeClient();
  const socket = await signIn(client);
  const feed = new LiveFeed(client);
  const changes = [];
  feed.subscribe((c) => changes.push(c.type));
  const post = { id: 3, author: "bob", text: "a", likes: 0 };
  socket.hubSends([{ ev: "feed.insert", cursor: "8", data: post }, { ev: "feed.insert", cursor: "8", data: post }]);
  socket.hubSends({ ev: "feed.insert", cursor: "9", data: { ...post, id: 4 } });
  socket.hubSends({ ev: "post.update", cursor: "10", data: { id: 3, likes: 2, text: "b" } });
  socket.hubSends({ ev: "post.update", cursor: "11", data: { id: 99, likes: 2 } });
  socket.hubSends({ ev: "post.delete", cursor: "12", data: { id: 4 } });
  socket.hubSends({ ev: "presence", cursor: null, data: { user: "bob", online: true } });
  socket.hubSends({ ev: "notification", cursor: "13", data: { notification: {}, unread: 1 } });
  assert.deepEqual(changes, ["insert", "insert", "update", "delete", "presence", "unread"]);
  assert.deepEqual(feed.posts, [{ ...post, likes: 2, text: "b" }]);
  assert.deepEqual([...feed.online], ["bob"]);
  assert.equal(client.cursor, "13");
  feed.dispose();
  client.close();
});

test("LiveFeed drops whom this user blocks or mutes at once, and reloads after a lift", async () => {
  const client = fakeClient();
  const socket = await signIn(client);
  const feed = new LiveFeed(client);
  socket.hubSends([3, 4, 5].map((id) => ({ ev: "feed.insert", cursor: String(id), data: { id, author: id === 4 ? "carol" : "bob" } })));
  socket.hubSends({ ev: "presence", cursor: null, data: { user: "carol", online: true } });
  const changes = [];
  feed.subscribe((change) => changes.push(change));
  const pushed = [];
  client.on("relation", (change) => pushed.push(change));

  socket.hubSends({ ev: "relation", cursor: null, data: { user: "bob", muted: true, until: null } });
  assert.deepEqual(changes, [{ type: "delete", id: 3 }, { type: "delete", id: 5 }]);
  assert.deepEqual(feed.posts.map((p) => p.id), [4]);
  socket.hubSends({ ev: "relation", cursor: null, data: { user: "carol", blocked: true } });
  assert.deepEqual(changes.slice(2), [{ type: "delete", id: 4 }, { type: "presence", user: "carol", online: false }]);
  assert.deepEqual([...feed.online], []);
  assert.equal(client.cursor, "5"); // relation pushes are ephemeral

  socket.hubSends({ ev: "relation", cursor: null, data: { user: "bob", muted: false, until: null } });
  await tick();
  assert.deepEqual(socket.sent.slice(-2).map((m) => m.op), ["feed.home", "notifications"]);
  socket.hubSends({ re: socket.sent.at(-2).id, result: { items: [{ id: 5, author: "bob" }, { id: 3, author: "bob" }], next: null } });
  socket.reply({ items: [], next: null, unread: 0 });
  await tick();
  await tick();
  assert.deepEqual(feed.posts.map((p) => p.id), [5, 3]);
  assert.ok(changes.some((change) => change.type === "reset"));
  assert.deepEqual(pushed.map((change) => change.user), ["bob", "carol", "bob"]);
  feed.dispose();
  client.close();
});

test("code points count astral characters once", () => {
  assert.equal(codePoints("a😀é"), 3);
});
