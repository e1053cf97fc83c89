// Builds small ONNX models in memory for benchmarks and test fixtures. The builder lives in the
// package (src/onnx/graph.ts, built to lib/ by `npm run build:ts`, which `npm test` runs first).
export { buildModel } from '../lib/onnx/graph.js';
