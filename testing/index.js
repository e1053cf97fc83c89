'use strict';
// @capibara/core/testing: the tiny-model builder of scripts/make-tiny-model.mjs, for an app's
// tests, examples and demos. CommonJS over the ES module, so `require` and `import` both reach it;
// index.d.ts holds the types.
Object.defineProperty(exports, '__esModule', { value: true });

const builder = () => import('../scripts/make-tiny-model.mjs');

exports.makeTinyModel = async function makeTinyModel(dir, options) {
  return (await builder()).makeTinyModel(dir, options);
};

exports.makeTinyHfModel = async function makeTinyHfModel(dir, options) {
  return (await builder()).makeTinyHfModel(dir, options);
};
