/** Whether this machine can run the CUDA kernels, and the reason shown in a skipped suite's name. */
import { nativeInfo } from '../../src/info';

const info = nativeInfo().cuda;
/** True when a CUDA device answered the addon's probe. */
export const CUDA_AVAILABLE = info.status === 'available';
/** `'skipped: <why>'` without a device, so the skip reason is in the test report; `''` with one. */
export const CUDA_SKIP = CUDA_AVAILABLE ? '' : ` (skipped: ${info.reason ?? info.status})`;
