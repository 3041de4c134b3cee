/** What every outlet is given: the camera's frame store, the relay's metrics, the shared client limiter, a logger. */
import type { Logger } from '@camrelay/common';
import type { FrameStore } from '../frame-store';
import type { CameraMetrics } from '../metrics';
import type { ClientLimiter } from './limits';

export interface OutletDeps {
  store: FrameStore;
  metrics: CameraMetrics;
  limiter: ClientLimiter;
  log: Logger;
}
