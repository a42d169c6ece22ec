/**
 * @file Child processes for end-to-end tests: spawn a server, wait until it is
 * ready, capture its output for failure messages, and stop it.
 *
 * Invariants:
 * - Every process started here is tracked and can be stopped by id; `stopAll()`
 *   stops exactly the processes this module started, never anything else.
 * - Output is kept in a bounded ring (the last {@link OUTPUT_LIMIT} characters per
 *   stream) so a chatty server cannot exhaust memory during a long run.
 * - Readiness is proved by the real thing answering (a URL responding, or the
 *   server printing its ready line), never by sleeping a fixed time.
 */

import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';

/** How many characters of stdout and of stderr are kept per process. */
export const OUTPUT_LIMIT = 64 * 1024;

/** Processes started by this module that have not exited yet. */
const running = new Set();

/**
 * A child process started by {@link startProcess}.
 *
 * @typedef {object} ManagedProcess
 * @property {string} name Human-readable name used in messages.
 * @property {import('node:child_process').ChildProcess} child The Node child process.
 * @property {() => string} stdout Captured stdout so far (bounded).
 * @property {() => string} stderr Captured stderr so far (bounded).
 * @property {() => string} output Both streams, labelled, for failure messages.
 * @property {Promise<{code: number|null, signal: string|null}>} exited Settles when the process exits.
 * @property {(pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>} waitForOutput
 *   Resolves with the first stdout line matching `pattern`.
 * @property {(timeoutMs?: number) => Promise<void>} stop Sends SIGTERM, then SIGKILL after `timeoutMs`.
 */

/**
 * Appends `text` to `buffer`, keeping only the last {@link OUTPUT_LIMIT} characters.
 *
 * @param {string} buffer
 * @param {string} text
 * @returns {string}
 */
function appendBounded(buffer, text) {
  const joined = buffer + text;
  return joined.length > OUTPUT_LIMIT ? joined.slice(joined.length - OUTPUT_LIMIT) : joined;
}

/**
 * Starts `command` with `args` and tracks it.
 *
 * @param {string} name Name used in messages (e.g. `'mcp-server'`).
 * @param {string} command Executable to run (e.g. `process.execPath`).
 * @param {string[]} args Arguments.
 * @param {{env?: NodeJS.ProcessEnv, cwd?: string, stdin?: 'ignore'|'pipe'}} [options]
 * @returns {ManagedProcess}
 */
export function startProcess(name, command, args, options = {}) {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  /** @type {Array<(line: string) => void>} */
  const lineListeners = [];
  /** @type {Set<(status: {code: number|null, signal: string|null}) => void>} */
  const exitWatchers = new Set();
  let pendingLine = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdout = appendBounded(stdout, chunk);
    pendingLine += chunk;
    const lines = pendingLine.split('\n');
    pendingLine = lines.pop() ?? '';
    for (const line of lines) {
      for (const listener of [...lineListeners]) listener(line);
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr = appendBounded(stderr, chunk);
  });

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(managed);
      resolve({ code, signal });
    });
    // A spawn failure (missing executable) emits 'error' and never 'exit'.
    child.once('error', (error) => {
      stderr = appendBounded(stderr, `spawn error: ${error.message}\n`);
      running.delete(managed);
      resolve({ code: null, signal: null });
    });
  });

  const output = () => `--- ${name} stdout ---\n${stdout}\n--- ${name} stderr ---\n${stderr}`;

  /** @type {ManagedProcess} */
  const managed = {
    name,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    output,
    exited,
    waitForOutput(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        // Lines already printed count too: the ready line may come before the caller asks.
        for (const line of stdout.split('\n')) {
          const match = line.match(pattern);
          if (match) {
            resolve(match);
            return;
          }
        }
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name}: no output matching ${pattern} within ${timeoutMs} ms\n${output()}`));
        }, timeoutMs);
        const onLine = (line) => {
          const match = line.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const onExit = ({ code, signal }) => {
          cleanup();
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before printing ${pattern}\n${output()}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          const index = lineListeners.indexOf(onLine);
          if (index >= 0) lineListeners.splice(index, 1);
          exitWatchers.delete(onExit);
        };
        lineListeners.push(onLine);
        exitWatchers.add(onExit);
      });
    },
    async stop(timeoutMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  exited.then((status) => {
    for (const watcher of [...exitWatchers]) watcher(status);
  });
  running.add(managed);
  return managed;
}

/**
 * Polls `url` until it answers with a status accepted by `isReady`, the process
 * exits, or `timeoutMs` passes.
 *
 * @param {string} url URL to poll with GET.
 * @param {{timeoutMs?: number, intervalMs?: number, process?: ManagedProcess,
 *          isReady?: (status: number) => boolean, headers?: Record<string, string>}} [options]
 * @returns {Promise<number>} The status of the first ready answer.
 */
export async function waitForUrl(url, options = {}) {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const intervalMs = options.intervalMs ?? 100;
  const isReady = options.isReady ?? ((status) => status < 500);
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no attempt made';
  while (Date.now() < deadline) {
    const watched = options.process;
    if (watched && (watched.child.exitCode !== null || watched.child.signalCode !== null)) {
      throw new Error(`${watched.name} exited while waiting for ${url}\n${watched.output()}`);
    }
    try {
      const response = await fetch(url, { headers: options.headers, signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (isReady(response.status)) return response.status;
      lastProblem = `status ${response.status}`;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await delay(intervalMs);
  }
  const details = options.process ? `\n${options.process.output()}` : '';
  throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${lastProblem})${details}`);
}

/**
 * Stops every process this module started and that is still running.
 *
 * @returns {Promise<void>}
 */
export async function stopAll() {
  await Promise.all([...running].map((managed) => managed.stop()));
}

/**
 * Runs `command` to completion and returns its exit status and output.
 *
 * @param {string} command
 * @param {string[]} args
 * @param {{env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number}} [options]
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string}>}
 */
export async function runToCompletion(command, args, options = {}) {
  const managed = startProcess(args[0] ?? command, command, args, { env: options.env, cwd: options.cwd });
  const timeoutMs = options.timeoutMs ?? 60_000;
  const timer = setTimeout(() => managed.child.kill('SIGKILL'), timeoutMs);
  const status = await managed.exited;
  clearTimeout(timer);
  return { ...status, stdout: managed.stdout(), stderr: managed.stderr() };
}
