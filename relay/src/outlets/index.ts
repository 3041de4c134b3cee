/** Client outlets: raw TCP (camera protocol) and HTTP (viewer, snapshot, MJPEG, status), sharing one limiter. */
export { ClientLimiter, type LimiterOptions, type LimiterDeps, type Lease, type Admission } from './limits';
export { ViewerAuth, safeEqual, type AuthOptions } from './auth';
export type { OutletDeps } from './deps';
export { RawOutlet, type RawOutletOptions } from './raw';
export { HttpOutlet, cameraReadiness, type HttpOutletOptions, type HttpOutletDeps } from './http';
export { HttpCamera, type HttpCameraOptions, type HttpCameraDeps } from './http-camera';
export { MjpegStreamer, partHeader, BOUNDARY, MJPEG_CONTENT_TYPE } from './mjpeg';
export { etagFor, etagMatches } from './snapshot';
export { FpsMeter, type SourceStatus } from './status';
