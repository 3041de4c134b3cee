/** The outlet rig and readers now live in test-support/relay.ts (one helper package for every tier). */
export * from '../../../test-support';
