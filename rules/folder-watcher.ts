// Reloads the rules when their folder changes: an fs.watch on the folder, debounced
// (reloadDebounceMs). A folder missing at start is looked for again every few seconds (on the
// engine's tick) and, once it appears, loaded and watched.
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { logger } from '../lib/log.js';

const log = logger('rules');

/** How often a missing rules folder is looked for again (engine time). */
const MISSING_DIR_CHECK_MS = 2000;

export interface FolderWatcherOptions {
  dir: string;
  debounceMs: number;
  /** Watch for changes at all (false: only a missing folder's appearance is noticed). */
  watch: boolean;
  /** The folder changed (after the debounce) or appeared. */
  onChange: () => void;
}

export class RuleFolderWatcher {
  private watcher?: FSWatcher;
  private debounce?: NodeJS.Timeout;
  private missing = false;
  private checkedAt = 0;

  constructor(private readonly options: FolderWatcherOptions) {}

  /** Whether the folder was missing at start and has not appeared since. */
  get folderMissing(): boolean {
    return this.missing;
  }

  /** Whether the folder exists at start; if not, `checkMissing` looks for it from now on. */
  checkExists(): boolean {
    this.missing = !existsSync(this.options.dir);
    if (this.missing) log.warn({ dir: this.options.dir }, 'the rules folder does not exist; running with no rules until it does');
    return !this.missing;
  }

  /** Watches an existing folder for changes (once the engine runs). */
  watchChanges(): void {
    if (!this.missing && this.options.watch) this.watchDir();
  }

  /** On the engine's tick: a folder missing at start that has appeared is loaded and watched. */
  checkMissing(now: number): void {
    if (!this.missing || now - this.checkedAt < MISSING_DIR_CHECK_MS) return;
    this.checkedAt = now;
    if (!existsSync(this.options.dir)) return;
    this.missing = false;
    log.info({ dir: this.options.dir }, 'the rules folder appeared; loading it');
    this.options.onChange();
    if (this.options.watch) this.watchDir();
  }

  close(): void {
    this.watcher?.close();
    clearTimeout(this.debounce);
  }

  private watchDir(): void {
    try {
      this.watcher = watch(this.options.dir, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.options.onChange(), this.options.debounceMs);
      });
      this.watcher.on('error', (err) => log.warn({ err: err.message }, 'stopped watching the rules folder; restart to pick up changes'));
    } catch (err) {
      log.warn({ err: (err as Error).message, dir: this.options.dir }, 'cannot watch the rules folder; changes need a restart');
    }
  }
}
