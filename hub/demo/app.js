// Hubbub demo app: a live home feed on top of hubbub.js (served by the hub at /).
//
// Sign-in: a hub started with --dev hands out tokens by name at /dev/token. In
// production the embedding app supplies the token, either in the URL fragment
// (`/#token=...`, removed from the address bar at once) or by posting
// `{type: "hubbub:token", token}` to this window from its parent frame. Only a parent
// on this page's origin or on one the hub allows (`--demo-origins`, listed in the
// page's hubbub-embedders meta tag) may frame the page or hand it a token.
//
// Block and mute: each post of someone else has Mute (for an hour, a day, or until
// unmuted) and Block (confirmed) actions; "Blocked and muted" lists them with Unblock /
// Unmute. The hub's `relation` push, sent to every tab of the user, makes each
// LiveFeed drop the author's posts at once and keeps that list current.
import { codePoints, HubbubClient, LiveFeed, MAX_POST_LENGTH } from "/hubbub.js";

const $ = (id) => document.getElementById(id);
const USER_ID = /^[a-z0-9_]{1,32}$/;
const EMBEDDERS = new Set([location.origin,
  ...(document.querySelector('meta[name="hubbub-embedders"]')?.content ?? "").split(" ").filter(Boolean)]);
const REFUSED = "The hub refused your token (expired or invalid): sign in again.";
const STATE_TEXT = {
  idle: "Offline", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
  resyncing: "Resyncing…", closed: "Disconnected",
};

let client = null;
let feeds = {};
let active = "home";
let following = new Set();
let blocked = new Set();
/** Muted users -> when the mute ends (ms), or null until unmuted. */
let muted = new Map();
const MUTE_CHOICES = [["for 1 hour", 3_600_000], ["for 1 day", 86_400_000], ["until I unmute", null]];

/** Build an element: el("button", {class: "x", onclick}, "text", child). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

function avatar(user) {
  let hue = 0;
  for (const ch of user) hue = (hue * 31 + ch.codePointAt(0)) % 360;
  const dot = el("span", { class: "dot", title: "online" }, el("span", { class: "visually-hidden" }, "online"));
  const node = el("span", { class: "avatar", "data-user": user }, user[0].toUpperCase(), dot);
  node.style.setProperty("--hue", hue); // CSSOM, which the page's CSP allows (style="" is not)
  return node;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 45) return "now";
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${Math.round(s / 3600)}h`;
  return new Date(ms).toLocaleDateString();
}

/** Post text with #tags and @mentions highlighted; never parsed as HTML. */
function richText(text) {
  const p = el("p", { class: "text" });
  for (const part of text.split(/([#@][A-Za-z0-9_]+)/)) {
    if (/^@[a-z0-9_]+$/.test(part)) p.append(el("button", { class: "mention", type: "button", "data-action": "profile", "data-user": part.slice(1) }, part));
    else if (/^#\w+$/.test(part)) p.append(el("span", { class: "tag" }, part));
    else p.append(part);
  }
  return p;
}

function postItem(post) {
  const mine = post.author === client.user.id;
  const parent = post.reply_to && feeds[active].byId.get(post.reply_to);
  const li = el("li", { class: "post", "data-post-id": post.id });
  li.append(el("article", { "aria-label": `Post by @${post.author}` },
    avatar(post.author),
    el("div", { class: "body" },
      el("div", { class: "meta" },
        el("button", { class: "author", type: "button", "data-action": "profile", "data-user": post.author }, `@${post.author}`),
        el("time", { datetime: new Date(post.created_at).toISOString(), "data-ms": post.created_at }, ago(post.created_at)),
        el("span", { class: "edited" }, "edited"),
        post.reply_to ? el("span", { class: "reply-to" }, `↪ replying to ${parent ? "@" + parent.author : "a post"}`) : ""),
      richText(post.text),
      el("div", { class: "actions" },
        el("button", { type: "button", "data-action": "reply" }, "Reply ", el("span", { class: "replies" })),
        el("button", { type: "button", class: "like", "data-action": "like" }, "♥ ", el("span", { class: "likes" })),
        mine ? el("button", { type: "button", "data-action": "edit" }, "Edit") : "",
        mine ? el("button", { type: "button", class: "danger", "data-action": "delete" }, "Delete") : "",
        ...(mine ? [] : relationButtons(post.author))))));
  patchItem(li, post);
  return li;
}

function patchItem(li, post) {
  li.querySelector(".text").replaceWith(richText(post.text));
  li.querySelector(".edited").hidden = !post.edited_at;
  li.querySelector(".likes").textContent = post.likes;
  li.querySelector(".replies").textContent = post.replies || "";
  const like = li.querySelector(".like");
  like.setAttribute("aria-pressed", String(Boolean(post.liked)));
  like.setAttribute("aria-label", `Like (${post.likes} ${post.likes === 1 ? "like" : "likes"})`);
  markOnline(li);
}

function markOnline(root) {
  for (const node of root.querySelectorAll(".avatar")) {
    node.classList.toggle("online", feeds.home.online.has(node.dataset.user));
  }
}

function renderFeed() {
  const list = $("feed");
  list.replaceChildren(...feeds[active].posts.map(postItem));
  $("empty").hidden = list.children.length > 0;
}

function onChange(name, change) {
  if (name === "home" && (change.type === "presence" || change.type === "reset")) {
    markOnline(document);
    renderPeople();
  }
  if (name === "everyone") renderSuggestions();
  if (change.type === "unread") renderBadge();
  if (name !== active) return;
  const list = $("feed");
  const item = (id) => list.querySelector(`[data-post-id="${id}"]`);
  if (change.type === "reset") renderFeed();
  if (change.type === "insert") {
    const li = postItem(change.post);
    li.classList.add("enter");
    const after = [...list.children].find((node) => Number(node.dataset.postId) < change.post.id);
    list.insertBefore(li, after ?? null);
    $("announce").textContent = `New post from @${change.post.author}`;
  }
  if (change.type === "update" && item(change.post.id)) patchItem(item(change.post.id), change.post);
  if (change.type === "delete") item(change.id)?.remove();
  $("empty").hidden = list.children.length > 0;
}

function renderBadge() {
  const unread = feeds.home.unread;
  $("badge").hidden = unread === 0;
  $("badge").textContent = unread;
  $("bell").setAttribute("aria-label", `Notifications (${unread} unread)`);
}

function personRow(user, ...actions) {
  return el("li", { class: "person" }, avatar(user),
    el("button", { class: "author", type: "button", "data-action": "profile", "data-user": user }, `@${user}`),
    ...actions);
}

/** Mute (or Unmute) and Block buttons for `user`, named with the handle. */
function relationButtons(user) {
  const on = muted.has(user);
  return [
    el("button", { type: "button", "data-action": on ? "unmute" : "mute-menu", "data-user": user,
      "aria-label": `${on ? "Unmute" : "Mute"} @${user}` }, on ? "Unmute" : "Mute"),
    el("button", { type: "button", class: "danger", "data-action": "block", "data-user": user,
      "aria-label": `Block @${user}` }, "Block"),
  ];
}

/** The mute choices, shown after the Mute button that asked for them. */
function muteMenu(button) {
  const { user } = button.dataset;
  button.parentElement.querySelector(".mute-menu")?.remove();
  const menu = el("span", { class: "mute-menu", role: "group", "aria-label": `Mute @${user} for how long?` },
    ...MUTE_CHOICES.map(([label, ms]) => el("button", { type: "button", "data-action": "mute", "data-user": user,
      "data-ms": ms ?? "", "aria-label": `Mute @${user} ${label}` }, label)),
    el("button", { type: "button", class: "ghost", "data-action": "mute-cancel" }, "Cancel"));
  button.after(menu);
  menu.querySelector("button").focus();
}

/** Arm a Block button; a second click blocks. */
async function block(button) {
  const { user } = button.dataset;
  if (!button.dataset.armed) {
    button.dataset.armed = "1";
    button.textContent = "Confirm block";
    button.setAttribute("aria-label", `Confirm block @${user}`);
    return;
  }
  await client.block(user);
}

/** "until <date and time>" for a mute that ends by itself. */
function mutedUntil(until) {
  const when = new Date(until);
  return el("time", { class: "hint", datetime: when.toISOString() },
    `until ${when.toLocaleString([], { dateStyle: "short", timeStyle: "short" })}`);
}

/** The "Blocked and muted" list: Unblock / Unmute per user (mutes that ended are left out). */
function renderHidden() {
  const now = Date.now();
  const lift = (action, label, user) => el("button", { type: "button", class: "ghost", "data-action": action,
    "data-user": user, "aria-label": `${label} @${user}` }, label);
  const rows = [
    ...[...blocked].sort().map((user) => personRow(user, lift("unblock", "Unblock", user))),
    ...[...muted].filter(([, until]) => until === null || until > now).sort()
      .map(([user, until]) => personRow(user, ...(until === null ? [] : [mutedUntil(until)]), lift("unmute", "Unmute", user))),
  ];
  $("hidden").replaceChildren(...(rows.length ? rows : [el("li", { class: "hint" }, "Nobody.")]));
}

/** One's own block or mute changed (in this tab or another): the LiveFeeds have
 * already dropped or reloaded the posts; keep the lists and the profile current. */
function onRelation({ user, blocked: isBlocked, muted: isMuted, until }) {
  if (isBlocked !== undefined) {
    if (isBlocked) blocked.add(user);
    else blocked.delete(user);
    if (isBlocked && following.delete(user)) {
      renderPeople();
      feeds.home.trackPresence([...following]).catch(() => {});
    }
  } else if (isMuted) {
    muted.set(user, until ?? null);
  } else {
    muted.delete(user);
  }
  renderHidden();
  renderSuggestions();
  if ($("profile").firstChild?.dataset?.user === user) showProfile(user);
  const what = isBlocked ? "blocked" : isMuted ? "muted" : isBlocked === false ? "unblocked" : "unmuted";
  $("announce").textContent = `You ${what} @${user}.`;
}

/** What to tell the user about a failed action on `user`'s post or profile. */
function explain(error, user) {
  if (error.code === "blocked" && user) return `You can't interact with @${user}.`;
  return error.message;
}

function followButton(user) {
  const on = following.has(user);
  return el("button", { type: "button", class: on ? "ghost" : "", "data-action": on ? "unfollow" : "follow", "data-user": user,
    "aria-label": `${on ? "Unfollow" : "Follow"} @${user}` }, on ? "Unfollow" : "Follow");
}

function renderPeople() {
  const rows = [...following].sort().map((user) => personRow(user, followButton(user)));
  $("following").replaceChildren(...(rows.length ? rows : [el("li", { class: "hint" }, "Nobody yet.")]));
  markOnline($("following"));
}

function renderSuggestions() {
  const authors = [...new Set(feeds.everyone.posts.map((p) => p.author))]
    .filter((user) => user !== client.user.id && !following.has(user) && !blocked.has(user) && !muted.has(user))
    .slice(0, 5);
  const rows = authors.map((user) => personRow(user, followButton(user)));
  $("suggest").replaceChildren(...(rows.length ? rows : [el("li", { class: "hint" }, "No suggestions right now.")]));
}

async function showProfile(user) {
  const box = $("profile");
  if (blocked.has(user)) { // the hub hides a blocked user's profile: say why
    box.replaceChildren(el("div", { class: "profile", "data-user": user }, el("p", {}, `You blocked @${user}.`),
      el("button", { type: "button", class: "ghost", "data-action": "unblock", "data-user": user,
        "aria-label": `Unblock @${user}` }, "Unblock")));
    return;
  }
  try {
    const p = await client.profile(user);
    box.replaceChildren(el("div", { class: "profile", "data-user": p.id }, avatar(p.id),
      el("div", {}, el("strong", {}, p.name), " ", el("span", { class: "handle" }, `@${p.id}`),
        p.bio ? el("p", {}, p.bio) : "",
        el("p", { class: "hint" }, `${p.posts} posts · ${p.followers} followers · ${p.following} following`)),
      p.id === client.user.id ? "" : el("div", { class: "profile-actions" }, followButton(p.id), ...relationButtons(p.id))));
    markOnline(box);
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", role: "alert" },
      error.code === "not_found" ? `No user @${user}.` : error.message));
  }
}

async function setFollowing(user, on) {
  await (on ? client.follow(user) : client.unfollow(user));
  if (on) following.add(user);
  else following.delete(user);
  await feeds.home.load();
  await feeds.home.trackPresence([...following]);
  renderPeople();
  renderSuggestions();
  if ($("profile").firstChild?.dataset?.user === user) await showProfile(user);
}

/** Like or unlike; the client's own post.update then re-renders the item in every feed. */
async function toggleLike(id) {
  const post = feeds[active].byId.get(id);
  await (post?.liked ? client.unlike(id) : client.like(id));
}

/** An inline form under a post (reply or edit); `submit(text)` does the work. */
function inlineForm(li, label, initial, submit) {
  const author = feeds[active].byId.get(Number(li.dataset.postId))?.author;
  li.querySelector("form")?.remove();
  const id = `inline-${li.dataset.postId}`;
  const area = el("textarea", { id, rows: 2 });
  area.value = initial;
  const form = el("form", { class: "inline" }, el("label", { for: id }, label), area,
    el("div", { class: "row" },
      el("button", { type: "button", class: "ghost", onclick: () => form.remove() }, "Cancel"),
      el("button", { type: "submit" }, label.split(" ")[0])));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!area.value.trim()) return;
    try {
      await submit(area.value);
      form.remove();
    } catch (error) {
      alertBriefly(explain(error, author));
    }
  });
  li.querySelector(".body").append(form);
  area.focus();
}

async function onAction(event) {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const li = button.closest("[data-post-id]");
  const id = li && Number(li.dataset.postId);
  const { user } = button.dataset;
  const author = user ?? (id && feeds[active].byId.get(id)?.author);
  try {
    switch (button.dataset.action) {
      case "profile": return await showProfile(user);
      case "follow": return await setFollowing(user, true);
      case "unfollow": return await setFollowing(user, false);
      case "like": return await toggleLike(id);
      case "reply": return inlineForm(li, "Reply to this post", "", (text) => client.post(text, id));
      case "edit": return inlineForm(li, "Edit your post", feeds[active].byId.get(id).text, (text) => client.edit(id, text));
      case "mute-menu": return muteMenu(button);
      case "mute-cancel": return button.closest(".mute-menu").remove();
      case "mute": return await client.mute(user, button.dataset.ms ? Date.now() + Number(button.dataset.ms) : null);
      case "unmute": return await client.unmute(user);
      case "block": return await block(button);
      case "unblock": return await client.unblock(user);
      case "delete":
        if (button.dataset.armed) return await client.deletePost(id);
        button.dataset.armed = "1";
        button.textContent = "Confirm delete";
        return;
    }
  } catch (error) {
    $("announce").textContent = explain(error, author);
    alertBriefly(explain(error, author));
  }
}

function alertBriefly(text) {
  const note = el("p", { class: "toast", role: "alert" }, text);
  document.body.append(note);
  setTimeout(() => note.remove(), 4000);
}

function updateCounter() {
  const n = codePoints($("compose-text").value.trim());
  $("counter").textContent = `${n} / ${MAX_POST_LENGTH}`;
  $("counter").classList.toggle("over", n > MAX_POST_LENGTH);
  $("post-button").disabled = n === 0 || n > MAX_POST_LENGTH;
}

async function compose(event) {
  event.preventDefault();
  const area = $("compose-text");
  try {
    await client.post(area.value);
    area.value = "";
    updateCounter();
  } catch (error) {
    alertBriefly(error.message);
  }
}

async function toggleNotes() {
  const panel = $("notes");
  const open = panel.hidden;
  panel.hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
  if (!open) return;
  const page = await client.call("notifications", { limit: 20 });
  const say = { follow: "followed you", like: "liked your post", reply: "replied to your post", mention: "mentioned you" };
  // A notification groups everyone who did the same to the same post: "@alice and 3 others liked your post".
  const others = (n) => (n.others ? ` and ${n.others} ${n.others === 1 ? "other" : "others"}` : "");
  $("notes-list").replaceChildren(...(page.items.length ? page.items.map((n) =>
    el("li", { class: n.read ? "" : "unread" }, avatar(n.actor), el("span", {}, el("strong", {}, `@${n.actor}`), `${others(n)} ${say[n.kind] ?? n.kind}`),
      el("time", { "data-ms": n.created_at }, ago(n.created_at)))) : [el("li", { class: "hint" }, "No notifications yet.")]));
  await feeds.home.markRead();
  panel.scrollIntoView({ block: "nearest" });
  panel.focus();
}

function selectTab(name) {
  active = name;
  for (const tab of ["home", "everyone"]) $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
  $("feed").setAttribute("aria-labelledby", `tab-${name}`);
  renderFeed();
}

async function start(token) {
  client = new HubbubClient({ url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`, token, maxDelay: 4000 });
  client.on("state", (state) => {
    $("conn").dataset.state = state;
    $("conn").textContent = STATE_TEXT[state] ?? state;
  });
  client.on("closed", ({ code }) => {
    if (code === 4500) signOut(REFUSED);
  });
  const me = await client.connect();
  feeds = { home: new LiveFeed(client), everyone: new LiveFeed(client, { op: "feed.public", stream: "public" }) };
  await client.subscribe("public");
  const page = await client.call("following", { user: me.id, limit: 100 });
  following = new Set(page.items.map((p) => p.id));
  const [blocks, mutes] = await Promise.all([client.blocks({ limit: 100 }), client.mutes({ limit: 100 })]);
  blocked = new Set(blocks.items.map((r) => r.user));
  muted = new Map(mutes.items.map((r) => [r.user, r.until]));
  client.on("relation", onRelation);
  await Promise.all([feeds.home.load(), feeds.everyone.load()]);
  await feeds.home.trackPresence([...following]);
  for (const [name, feed] of Object.entries(feeds)) feed.subscribe((change) => onChange(name, change));
  $("whoami").replaceChildren(avatar(me.id), `@${me.id}`);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").hidden = false;
  selectTab("home");
  renderPeople();
  renderSuggestions();
  renderHidden();
  renderBadge();
  $("compose-text").focus();
}

/** Back to the sign-in form after `start` failed. */
function failed(error) {
  signOut(error.code === "unauthorized" ? REFUSED : error.message);
}

function signOut(message = "") {
  client?.close();
  sessionStorage.removeItem("hubbub.user");
  $("app").hidden = true;
  $("me").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

async function devSignIn(event) {
  event?.preventDefault();
  const name = $("signin-name").value.trim().toLowerCase();
  const error = $("signin-error");
  if (!USER_ID.test(name)) {
    error.textContent = "A handle is 1 to 32 lower-case letters, digits or “_”.";
    return $("signin-name").focus();
  }
  error.textContent = "";
  const response = await fetch(`/dev/token?user=${encodeURIComponent(name)}`);
  if (response.status === 404) {
    error.textContent = "This hub is not in --dev mode: open the page with #token=… from your app.";
    return;
  }
  if (!response.ok) {
    error.textContent = await response.text();
    return;
  }
  sessionStorage.setItem("hubbub.user", name);
  await start((await response.json()).token).catch(failed);
}

function boot() {
  $("signin-form").addEventListener("submit", devSignIn);
  $("signout").addEventListener("click", () => signOut());
  $("compose-text").addEventListener("input", updateCounter);
  $("compose-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("post-button").disabled) $("compose").requestSubmit();
  });
  $("compose").addEventListener("submit", compose);
  $("bell").addEventListener("click", toggleNotes);
  $("tab-home").addEventListener("click", () => selectTab("home"));
  $("tab-everyone").addEventListener("click", () => selectTab("everyone"));
  $("find").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("find-input").value.trim().toLowerCase().replace(/^@/, "");
    if (USER_ID.test(user)) showProfile(user);
  });
  document.querySelector("main").addEventListener("click", onAction);
  setInterval(() => {
    for (const t of document.querySelectorAll("time[data-ms]")) t.textContent = ago(Number(t.dataset.ms));
  }, 30000);
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || event.source === window || !EMBEDDERS.has(event.origin)) return;
    if (event.data?.type === "hubbub:token" && (!client || client.state === "closed")) {
      start(event.data.token).catch(failed);
    }
  });
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) {
    history.replaceState(null, "", location.pathname);
    start(token).catch(failed);
  } else if (sessionStorage.getItem("hubbub.user")) {
    $("signin-name").value = sessionStorage.getItem("hubbub.user");
    devSignIn();
  }
}

boot();
