// Types for hubbub.js, the dependency-free Hubbub client (wire format: protocol/SPEC.md).

export const SUBPROTOCOL_JSON: "hubbub.v1.json";
export const MAX_POST_LENGTH: 500;
export const CloseCode: Readonly<{
  DRAINING: 4000;
  SLOW: 4001;
  INTERNAL: 4002;
  AUTH_TIMEOUT: 4003;
  TOO_MANY_CONNECTIONS: 4004;
  UNAUTHORIZED: 4500;
  PROTOCOL_ERROR: 4501;
  FLOOD: 4502;
}>;

export function shouldReconnect(code: number): boolean;
export function codePoints(text: string): number;

export type ErrorCode =
  | "bad_request" | "unauthorized" | "forbidden" | "not_found" | "rate_limited"
  | "too_large" | "conflict" | "unknown_op" | "unavailable" | "internal" | "blocked"
  | "timeout" | "closed" | (string & {});

export class HubbubError extends Error {
  constructor(code: ErrorCode, message: string, retryAfter?: number | null);
  readonly code: ErrorCode;
  readonly retryAfter: number | null;
}

export interface Profile {
  id: string; name: string; bio: string;
  followers: number; following: number; posts: number; created_at: number;
}
export interface Post {
  id: number; author: string; text: string; created_at: number; edited_at: number | null;
  reply_to: number | null; root: number | null; tags: string[]; mentions: string[];
  likes: number; replies: number;
  /** Whether the viewer likes it: in replies and pages, and after this client's own
   * like/unlike; absent on posts that arrived as live events (not liked yet). */
  liked?: boolean;
}
/** A group: everyone who did `kind` to `post` (SPEC section 1). `actor` is the newest;
 * `actors` the newest few, newest first; `others` how many besides `actor`. When someone
 * joins, the group comes again under a new id: replace the one with the same kind and post.
 * Absent from hubs before groups (read as `[actor]` and 0). */
export interface Notification {
  id: number; kind: "follow" | "like" | "reply" | "mention"; actor: string;
  post: number | null; created_at: number; read: boolean;
  actors?: string[]; others?: number;
}
export interface Page<T> { items: T[]; next: string | null }
export interface PageOptions { before?: string | null; limit?: number }
/** One of one's blocks or mutes: `until` is when a mute ends (ms); null until lifted,
 * and always for a block. */
export interface Relation { user: string; until: number | null }
/** The `relation` push: one's own block or mute of `user` changed, on any device. */
export type RelationChange =
  | { user: string; blocked: boolean; muted?: undefined }
  | { user: string; muted: boolean; until: number | null; blocked?: undefined };
export type PostPatch = { id: number } & Partial<Omit<Post, "id">>;

export interface HubEvent { type: string; cursor: string | null; data: any }

export interface ClientEvents {
  state: ConnectionState;
  event: HubEvent;
  ready: { resumed: boolean };
  closed: { code: number; reason: string };
  resync: { reason: string };
  "feed.insert": Post;
  "stream.insert": { stream: string; post: Post };
  "post.update": PostPatch;
  "post.delete": { id: number };
  notification: { notification: Notification; unread: number };
  presence: { user: string; online: boolean };
  notice: { kind: string; message: string };
  relation: RelationChange;
}

export type ServerMessage =
  | { kind: "reply"; message: { re: number; result: any } }
  | { kind: "error"; message: { re: number | null; error: { code: string; message: string; retry_after?: number } } }
  | { kind: "event"; message: { ev: string; cursor: string | null; data: any } };

export const jsonCodec: Readonly<{
  subprotocol: "hubbub.v1.json";
  encodeRequest(id: number, op: string, args?: object): string;
  decode(frame: string): ServerMessage[];
}>;

export class Emitter<Events extends Record<string, any> = Record<string, any>> {
  on<K extends keyof Events & string>(type: K, listener: (data: Events[K]) => unknown): () => void;
  emit<K extends keyof Events & string>(type: K, data: Events[K]): unknown[];
}

export type ConnectionState =
  | "idle" | "connecting" | "live" | "reconnecting" | "resyncing" | "closed";

export interface ClientOptions {
  url: string;
  token: string | (() => string | Promise<string>);
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
  timeout?: number;
  minDelay?: number;
  maxDelay?: number;
  random?: () => number;
}

export class HubbubClient extends Emitter<ClientEvents> {
  constructor(options: ClientOptions);
  readonly state: ConnectionState;
  readonly user: Profile | null;
  readonly cursor: string | null;
  readonly streams: Set<string>;
  connect(): Promise<Profile>;
  close(): void;
  call<T = any>(op: string, args?: object, options?: { timeout?: number }): Promise<T>;
  subscribe(stream: string): Promise<{ stream: string; subscribed: true }>;
  unsubscribe(stream: string): Promise<{ stream: string; subscribed: false }>;
  post(text: string, replyTo?: number): Promise<Post>;
  edit(post: number, text: string): Promise<Post>;
  deletePost(post: number): Promise<{ post: number; deleted: true }>;
  getPost(post: number): Promise<Post>;
  like(post: number): Promise<{ post: number; liked: true; likes: number }>;
  unlike(post: number): Promise<{ post: number; liked: false; likes: number }>;
  follow(user: string): Promise<{ user: string; following: true }>;
  unfollow(user: string): Promise<{ user: string; following: false }>;
  profile(user: string): Promise<Profile>;
  block(user: string): Promise<{ user: string; blocked: true }>;
  unblock(user: string): Promise<{ user: string; blocked: false }>;
  mute(user: string, until?: number | Date | null): Promise<{ user: string; muted: true; until: number | null }>;
  unmute(user: string): Promise<{ user: string; muted: false }>;
  blocks(page?: PageOptions): Promise<Page<Relation>>;
  mutes(page?: PageOptions): Promise<Page<Relation>>;
}

export type FeedChange =
  | { type: "reset" }
  | { type: "insert"; post: Post }
  | { type: "update"; post: Post }
  | { type: "delete"; id: number }
  | { type: "presence"; user?: string; online?: boolean }
  | { type: "unread"; unread: number };

export interface LiveFeedOptions {
  op?: string;
  args?: object;
  stream?: string | null;
  limit?: number;
}

export class LiveFeed extends Emitter<{ change: FeedChange }> {
  constructor(client: HubbubClient, options?: LiveFeedOptions);
  readonly posts: Post[];
  readonly byId: Map<number, Post>;
  readonly online: Set<string>;
  readonly unread: number;
  subscribe(listener: (change: FeedChange) => void): () => void;
  load(): Promise<void>;
  trackPresence(users: string[]): Promise<void>;
  markRead(): Promise<void>;
  dispose(): void;
}
