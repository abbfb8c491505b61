// Start a real `hubbub serve --dev` as a child process for the tests (not a test file).
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const DEFAULT_HUBBUB = fileURLToPath(new URL("../../../.venv/bin/hubbub", import.meta.url));
const LISTENING = /listening on ws:\/\/127\.0\.0\.1:(\d+)\//;

/** A hub child process; `start()` resolves with its port once it listens. */
export class Hub {
  constructor({ dataDir = mkdtempSync(join(tmpdir(), "hubbub-js-")), port = 0 } = {}) {
    Object.assign(this, { dataDir, port, child: null, output: "" });
  }

  /** Start the hub (again, on the same port and data after a restart). */
  start() {
    const command = process.env.HUBBUB_BIN ?? DEFAULT_HUBBUB;
    const args = ["serve", "--dev", "--port", String(this.port), "--data-dir", this.dataDir,
      "--presence-grace", "0.2", "--counts-window", "0.05", "--drain-timeout", "1"];
    this.child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.output = "";
    return new Promise((resolve, reject) => {
      this.child.stdout.setEncoding("utf8").on("data", (text) => {
        this.output += text;
        const found = LISTENING.exec(this.output);
        if (found && this.port === 0) this.port = Number(found[1]);
        if (found) resolve(this.port);
      });
      this.child.stderr.setEncoding("utf8").on("data", (text) => { this.output += text; });
      this.child.on("error", reject);
      this.child.on("exit", (code) => reject(new Error(`hub exited (${code}):\n${this.output}`)));
    });
  }

  /** The hub's WebSocket URL. */
  get url() { return `ws://127.0.0.1:${this.port}/`; }

  /** A dev token for `user`. */
  async token(user) {
    const response = await fetch(`http://127.0.0.1:${this.port}/dev/token?user=${user}`);
    return (await response.json()).token;
  }

  /** SIGTERM (drain) or SIGKILL the hub and wait for it to exit. */
  stop(signal = "SIGTERM") {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill(signal);
    return exited;
  }
}
