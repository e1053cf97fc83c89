/**
 * The embedder interfaces: how texts become vectors for memory retrieval and query routing.
 * @module
 */

/**
 * Turns texts into embedding vectors for the vector part of retrieval. Plug a real model here
 * (transformers.js, an ONNX model through onnxruntime-node, a remote API); the default is the
 * offline {@link HashedEmbedder}.
 *
 * @example
 * ```ts
 * const embedder: Embedder = { dimensions: 384, embed: async (texts) => texts.map(() => new Float32Array(384)) };
 * ```
 */
export interface Embedder {
  /** Length of every vector. */
  readonly dimensions: number;
  /** One vector per text, in order. Vectors need not be normalised; cosine similarity is used. */
  embed(texts: readonly string[]): Promise<Float32Array[]> | Float32Array[];
}

/**
 * An {@link Embedder} that answers synchronously, as request routing needs (a route is chosen
 * inside one synchronous call). {@link HashedEmbedder} is one; a model behind a network call is not.
 *
 * @example
 * ```ts
 * const embedder: SyncEmbedder = { dimensions: 8, embed: (texts) => texts.map(() => new Float32Array(8)) };
 * ```
 */
export interface SyncEmbedder extends Embedder {
  /** One vector per text, in order, returned at once (never a Promise). */
  embed(texts: readonly string[]): Float32Array[];
}
