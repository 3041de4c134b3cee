/** The relay's unit-test helpers now live in test-support/ (one helper package for every tier). */
export * from '../../../test-support';
/** @deprecated the old name of test-support's waitFor (same arguments); import waitFor instead. */
export { waitFor as until } from '../../../test-support';
