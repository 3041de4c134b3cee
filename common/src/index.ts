export * from './config';
export * from './logger';
export * from './backoff';
export * from './clock';
export * from './lifecycle';
export * from './http-server';
export * from './jpeg';
export * from './listen';
