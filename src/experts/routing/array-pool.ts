/**
 * Per-query typed arrays of the scorer, carved out of shared buffers.
 * @module
 */

// V8 gives a typed array of more than 64 bytes its own backing store outside the heap, which
// costs about a microsecond to allocate and more to collect: per-query arrays are views of
// shared 64 KiB buffers instead (as Node pools small Buffers), about 20 times cheaper.
const POOL_BYTES = 64 * 1024;

/**
 * Hands out fresh (zeroed, never reused) views of shared buffers; a buffer lives while any view of it does.
 * @internal
 */
export class ArrayPool {
  #buffer = new ArrayBuffer(0);
  #used = 0;

  f32(n: number): Float32Array {
    const at = this.#take(4 * n);
    return new Float32Array(this.#buffer, at, n);
  }

  f64(n: number): Float64Array {
    const at = this.#take(8 * n);
    return new Float64Array(this.#buffer, at, n);
  }

  #take(bytes: number): number {
    const size = (bytes + 7) & ~7; // keeps every view 8-byte aligned
    if (this.#used + size > this.#buffer.byteLength) {
      this.#buffer = new ArrayBuffer(Math.max(POOL_BYTES, size));
      this.#used = 0;
    }
    const at = this.#used;
    this.#used += size;
    return at;
  }
}
