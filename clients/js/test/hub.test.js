// The client and LiveFeed against a real hub child process: live updates between two
// users, presence, notifications, resume after a restart, and a rejected token.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { HubbubClient, LiveFeed } from "../hubbub.js";
import { Hub } from "./hubproc.js";

const hub = new Hub();
const clients = [];

before(() => hub.start());
after(async () => {
  for (const client of clients) client.close();
  await hub.stop();
  rmSync(hub.dataDir, { recursive: true, force: true });
});

async function signIn(user, options = {}) {
  const client = new HubbubClient({ url: hub.url, token: () => hub.token(user), minDelay: 50, maxDelay: 500, ...options });
  clients.push(client);
  await client.connect();
  return client;
}

/** Resolve with the first change of `type` the feed reports for which `match` holds. */
function nextChange(feed, type, match = () => true) {
  return new Promise((resolve) => {
    const stop = feed.subscribe((change) => {
      if (change.type === type && match(change)) {
        stop();
        resolve(change);
      }
    });
  });
}

test("two users see each other's posts, edits, likes and deletes live", async () => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");
  await alice.follow("bob");
  const feed = new LiveFeed(alice);
  await feed.load();
  await feed.trackPresence(["bob"]);
  assert.deepEqual([...feed.online], ["bob"]);

  const inserted = nextChange(feed, "insert");
  const post = await bob.post("hello #hubbub");
  assert.equal((await inserted).post.id, post.id);

  const edited = nextChange(feed, "update", (c) => c.post.text === "hello again");
  await bob.edit(post.id, "hello again");
  assert.ok((await edited).post.edited_at);

  const counted = nextChange(feed, "update", (c) => c.post.likes === 1);
  const bobFeed = new LiveFeed(bob);
  await bobFeed.load();
  const notified = nextChange(bobFeed, "unread", (c) => c.unread === 2); // follow + like
  await alice.like(post.id);
  await counted;
  await notified;

  const deleted = nextChange(feed, "delete");
  await bob.deletePost(post.id);
  assert.equal((await deleted).id, post.id);
  assert.deepEqual(feed.posts.map((p) => p.id), []);

  const offline = nextChange(feed, "presence", (c) => c.user === "bob" && !c.online);
  bob.close();
  await offline;
  feed.dispose();
  bobFeed.dispose();
});

test("a feed knows which posts its own user likes, live and after a reload", async () => {
  const carol = await signIn("carol");
  const dave = await signIn("dave");
  await carol.follow("dave");
  const post = await dave.post("like me, carol");
  const feed = new LiveFeed(carol);
  await feed.load();
  assert.equal(feed.byId.get(post.id).liked, false);

  const liked = nextChange(feed, "update", (c) => c.post.id === post.id && c.post.liked === true);
  await carol.like(post.id);
  assert.equal((await liked).post.likes, 1);
  assert.deepEqual(await carol.getPost(post.id), { ...post, likes: 1, liked: true });
  const fresh = new LiveFeed(carol);
  await fresh.load();
  assert.equal(fresh.byId.get(post.id).liked, true);

  const unliked = nextChange(feed, "update", (c) => c.post.id === post.id && c.post.liked === false);
  await carol.unlike(post.id);
  assert.equal((await unliked).post.likes, 0);
  const davesView = new LiveFeed(dave);
  await davesView.load();
  assert.equal(davesView.byId.get(post.id).liked, false);
  for (const each of [feed, fresh, davesView]) each.dispose();
});

test("after a hub restart the client resumes and gets the post made meanwhile, once", async () => {
  const carol = await signIn("carol");
  const dave = await signIn("dave");
  await carol.follow("dave");
  const feed = new LiveFeed(carol);
  await feed.load();
  const states = [];
  carol.on("state", (s) => states.push(s));

  await hub.stop();
  // Meanwhile dave posts through another hub on the same data.
  const other = new Hub({ dataDir: hub.dataDir });
  await other.start();
  const writer = new HubbubClient({ url: other.url, token: () => other.token("dave") });
  await writer.connect();
  const missed = await writer.post("posted while carol was away");
  writer.close();
  await other.stop();

  const caughtUp = nextChange(feed, "insert", (c) => c.post.id === missed.id);
  await hub.start();
  await caughtUp;
  await new Promise((resolve) => carol.on("ready", resolve));
  assert.ok(states.includes("reconnecting"));
  assert.equal(carol.state, "live");
  assert.equal(feed.posts.filter((p) => p.id === missed.id).length, 1);
  dave.close();
  feed.dispose();
});

test("block and mute: calls, pages, the relation push in another tab, the blocked error", async () => {
  const erin = await signIn("erin");
  const otherTab = await signIn("erin");
  const frank = await signIn("frank");
  const gina = await signIn("gina");
  await erin.follow("frank");
  await erin.follow("gina");
  const franks = await frank.post("frank here");
  const ginas = await gina.post("gina here");
  const mine = await erin.post("erin here");
  const feed = new LiveFeed(otherTab);
  await feed.load();
  assert.deepEqual(feed.posts.map((p) => p.id), [mine.id, ginas.id, franks.id]);

  const pushed = new Promise((resolve) => otherTab.on("relation", resolve));
  const franksGone = nextChange(feed, "delete", (c) => c.id === franks.id);
  assert.deepEqual(await erin.block("frank"), { user: "frank", blocked: true });
  assert.deepEqual(await pushed, { user: "frank", blocked: true });
  await franksGone;
  await assert.rejects(frank.like(mine.id), { code: "blocked" });
  await assert.rejects(frank.post("hi", mine.id), { code: "blocked" });
  assert.deepEqual(await erin.blocks(), { items: [{ user: "frank", until: null }], next: null });

  const until = new Date(Date.now() + 3_600_000);
  const ginasGone = nextChange(feed, "delete", (c) => c.id === ginas.id);
  assert.deepEqual(await erin.mute("gina", until), { user: "gina", muted: true, until: until.getTime() });
  await ginasGone;
  assert.deepEqual(feed.posts.map((p) => p.id), [mine.id]);
  assert.deepEqual((await erin.mutes({ limit: 10 })).items, [{ user: "gina", until: until.getTime() }]);
  await gina.like(mine.id); // a mute is one-way: gina may still like

  const back = nextChange(feed, "reset");
  assert.deepEqual(await erin.unmute("gina"), { user: "gina", muted: false });
  await back;
  assert.deepEqual(feed.posts.map((p) => p.id), [mine.id, ginas.id]);
  await erin.unblock("frank");
  assert.deepEqual((await erin.blocks({ limit: 5 })).items, []);
  feed.dispose();
});

test("a rejected token gives up without reconnecting", async () => {
  const mallory = new HubbubClient({ url: hub.url, token: "not-a-token", minDelay: 10 });
  const states = [];
  mallory.on("state", (s) => states.push(s));
  await assert.rejects(mallory.connect(), { code: "unauthorized" });
  assert.deepEqual(states, ["connecting", "closed"]);
});
