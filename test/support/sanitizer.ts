/** True inside `npm run test:sanitize`, which LD_PRELOADs the ASan runtime into every process of the run. */
export const underAsan = /libasan/.test(process.env['LD_PRELOAD'] ?? '');
