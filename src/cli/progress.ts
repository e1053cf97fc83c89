/**
 * A progress bar with an ETA for long commands (`capibara bench`, `calibrate`, `memory import`).
 * On a terminal it redraws one line; elsewhere (a pipe, a log, a test) it prints a line at each
 * quarter, so output stays readable and short.
 * @module
 * @internal
 */

/** What the bar writes to: a stream with an optional terminal width. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #label: string;
  readonly #t0 = performance.now();
  #total: number | undefined;
  #done = 0;
  #shownQuarter = -1;
  #drawn = false;

  constructor(label: string, total: number | undefined, stream: ProgressStream = process.stderr) {
    this.#label = label;
    this.#total = total;
    this.#stream = stream;
  }

  /** Sets what is done (and the total, when it becomes known), and redraws. */
  update(done: number, total = this.#total, note = ''): void {
    this.#done = done;
    this.#total = total;
    if (this.#stream.isTTY) {
      this.#stream.write(`\r${this.#line(note)}\x1b[K`);
      this.#drawn = true;
      return;
    }
    if (total === undefined || total === 0) return;
    const quarter = Math.floor((4 * done) / total);
    if (quarter > this.#shownQuarter) {
      this.#shownQuarter = quarter;
      this.#stream.write(`${this.#line(note)}\n`);
    }
  }

  /** Clears the bar's line (a terminal) so other output can be written; `redraw()` puts it back. */
  clear(): void {
    if (this.#stream.isTTY && this.#drawn) this.#stream.write('\r\x1b[K');
  }

  redraw(note = ''): void {
    if (this.#stream.isTTY) this.update(this.#done, this.#total, note);
  }

  /** Ends the bar with a final line, at `done` (default what was last set). */
  finish(note = '', done = this.#done): void {
    this.#done = done;
    if (this.#stream.isTTY) this.#stream.write(`\r${this.#line(note)}\x1b[K\n`);
    else if (this.#shownQuarter < 4) this.#stream.write(`${this.#line(note)}\n`);
    this.#shownQuarter = 4;
  }

  #line(note: string): string {
    const elapsed = (performance.now() - this.#t0) / 1000;
    const total = this.#total;
    let bar = '';
    let eta = '';
    if (total !== undefined && total > 0) {
      const share = Math.min(1, this.#done / total);
      const width = 24;
      const full = Math.round(share * width);
      bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${this.#done}/${total} `;
      if (this.#done > 0 && this.#done < total) eta = `, ETA ${clock((elapsed / this.#done) * (total - this.#done))}`;
    } else bar = `${this.#done} `;
    return `${this.#label} ${bar}(${clock(elapsed)}${eta})${note === '' ? '' : ` ${note}`}`;
  }
}

/** Seconds as `m:ss` (or `h:mm:ss`). */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
