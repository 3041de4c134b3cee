/** What every outlet is given: the camera's frame store, the relay's metrics, the shared client limiter, a logger. */
import type { Logger } from '@camrelay/common';
import type { FrameStore } from '../frame-store';
import type { RelayMetrics } from '../metrics';
import type { ClientLimiter } from './limits';

export interface OutletDeps {
  store: FrameStore;
  metrics: RelayMetrics;
  limiter: ClientLimiter;
  log: Logger;
}
