// Compiled by `tsc -p clients/js` (make typecheck, make test): the declarations in
// hubbub.d.ts must describe a usable API. Nothing here runs.
import {
  CloseCode,
  HubbubClient,
  HubbubError,
  LiveFeed,
  MAX_POST_LENGTH,
  codePoints,
  shouldReconnect,
  type FeedChange,
  type Post,
  type Profile,
  type Relation,
  type RelationChange,
} from "../hubbub.js";

export async function tour(token: () => Promise<string>): Promise<string[]> {
  const client = new HubbubClient({ url: "ws://127.0.0.1:8765/", token, timeout: 5000 });
  client.on("state", (state) => console.log(state));
  const me: Profile = await client.connect();
  const feed = new LiveFeed(client, { limit: 20 });
  const stop = feed.subscribe((change: FeedChange) => {
    if (change.type === "update") console.log(change.post.likes, change.post.liked ?? false);
  });
  await feed.load();
  await feed.trackPresence(["bob"]);
  const post: Post = await client.post("hello #hubbub");
  const { liked, likes } = await client.like(post.id);
  const again: Post = await client.getPost(post.id);
  if (again.liked !== liked || again.likes !== likes) throw new Error("out of step");
  await client.unlike(post.id);
  try {
    await client.edit(post.id, "x".repeat(MAX_POST_LENGTH + 1));
  } catch (error) {
    if (error instanceof HubbubError && error.code === "too_large") console.log(error.message);
  }
  const page = await client.call<{ items: Post[]; next: string | null }>("feed.public", { limit: 5 });
  client.on("relation", (change: RelationChange) => {
    if (change.blocked !== undefined) console.log(change.user, change.blocked);
    else console.log(change.user, change.muted, change.until ?? "until unmuted");
  });
  await client.block("mallory");
  const { until } = await client.mute("bob", new Date(Date.now() + 3_600_000));
  await client.mute("carol", until ?? undefined);
  const muted: Relation[] = (await client.mutes({ limit: 50 })).items;
  const blocked = await client.blocks();
  if (blocked.next !== null) await client.blocks({ before: blocked.next });
  await client.unmute("bob");
  await client.unblock("mallory");
  try {
    await client.like(post.id);
  } catch (error) {
    if (error instanceof HubbubError && error.code === "blocked") console.log(muted.length);
  }
  const crowded: boolean = shouldReconnect(CloseCode.TOO_MANY_CONNECTIONS);
  stop();
  feed.dispose();
  client.close();
  const reconnects: boolean = shouldReconnect(CloseCode.DRAINING);
  return [me.id, String(codePoints(post.text)), String(reconnects && crowded), ...page.items.map((p) => p.text)];
}
