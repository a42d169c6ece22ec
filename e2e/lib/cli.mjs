/**
 * @file Helpers for modules that are both a library and a command-line program.
 *
 * Invariant: a module counts as "run as a program" only when Node's entry script
 * resolves (through symlinks) to that module's own file.
 */

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Returns `true` when the module at `moduleUrl` is the program Node was asked to run.
 *
 * @param {string} moduleUrl The caller's `import.meta.url`.
 * @returns {boolean}
 */
export function isMainModule(moduleUrl) {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
