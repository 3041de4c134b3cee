import { descendants } from '../../../test-support';
import { parseTop } from '../../src/docker';

describe('the daemon\'s processes in a container', () => {
  // docker top -eo pid,ppid of a relay container: docker-init (4100) runs the entrypoint's node (4120),
  // which has a child (4130); the health check's node (4200) and the soak's `sh -c du` (4300, with its
  // `du` 4301) were started by `docker exec`, so their parent is containerd's shim (4000), outside.
  const top = 'PID    PPID\n4100   4000\n4120   4100\n4130   4120\n4200   4000\n4300   4000\n4301   4300\n';

  it('reads docker top\'s pid and ppid columns', () => {
    expect(parseTop(top)).toEqual([[4100, 4000], [4120, 4100], [4130, 4120], [4200, 4000], [4300, 4000], [4301, 4300]]);
  });

  it('keeps the first process and its descendants, not what docker exec started', () => {
    expect(descendants(parseTop(top), 4100).sort()).toEqual([4100, 4120, 4130]);
  });

  it('finds a child listed before its parent', () => {
    expect(descendants([[12, 11], [11, 10], [10, 1]], 10).sort()).toEqual([10, 11, 12]);
  });

  it('is empty when the first process is gone (the container is restarting)', () => {
    expect(descendants(parseTop(top), 9999)).toEqual([]);
  });
});
