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
  stop();
  feed.dispose();
  client.close();
  const reconnects: boolean = shouldReconnect(CloseCode.DRAINING);
  return [me.id, String(codePoints(post.text)), String(reconnects), ...page.items.map((p) => p.text)];
}
