/** The child-process rigs now live in test-support/relay.ts (one helper package for every tier). */
export * from '../../../test-support';
