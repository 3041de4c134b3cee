#!/usr/bin/python3
"""hangfs: a pass-through FUSE filesystem whose every operation blocks while a flag file exists.

Reproduces a disk that stops answering (hard-mounted NFS, a dying USB disk): a process touching the
mount waits in the kernel until the flag file is removed, then the operation completes normally.

    hangfs.py BACKING_DIR MOUNTPOINT FLAG_FILE

Runs in the foreground (multithreaded, so several blocked callers can wait at once), prints
"hangfs: mounted" on stdout once the mount answers, and unmounts on SIGTERM/SIGINT. The flag file
must live OUTSIDE the mount. Blocked operations poll the flag every 20 ms (sleeping, not spinning).
Unmount from outside with `fusermount -u MOUNTPOINT` or `umount -l MOUNTPOINT`.

Debian: python3-fusepy (module `fusepy`; upstream names it `fuse`), libfuse2, fuse3 (fusermount).
"""
import errno
import os
import sys
import threading
import time

try:
    from fusepy import FUSE, FuseOSError, Operations  # Debian's python3-fusepy
except ImportError:  # pragma: no cover - pip's fusepy
    from fuse import FUSE, FuseOSError, Operations


class HangFS(Operations):
    def __init__(self, root, flag):
        self.root = os.path.realpath(root)
        self.flag = flag

    def _gate(self):
        # Attribute names must not clash with FUSE operation names (lock, open, ...): fusepy
        # dispatches by name.
        while os.path.exists(self.flag):
            time.sleep(0.02)

    def _path(self, p):
        return os.path.join(self.root, p.lstrip('/'))

    def __call__(self, op, path, *args):
        # init/destroy come from libfuse itself; everything a caller does waits at the gate.
        if op not in ('init', 'destroy'):
            self._gate()
        try:
            return super().__call__(op, path, *args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO)

    # ---- metadata ----
    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {k: getattr(st, k) for k in ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid')}

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._path(path))

    def statfs(self, path):
        sv = os.statvfs(self._path(path))
        return {k: getattr(sv, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._path(path), times)

    # ---- directories and names ----
    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        os.rmdir(self._path(path))

    def unlink(self, path):
        os.unlink(self._path(path))

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))

    # ---- files ----
    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        with open(self._path(path), 'r+b') as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    backing, mountpoint, flag = sys.argv[1:]
    fs = HangFS(backing, flag)

    def announce():
        # The mount answers once stat() of the mountpoint shows a different device than its parent.
        parent = os.stat(os.path.dirname(os.path.abspath(mountpoint))).st_dev
        for _ in range(500):
            try:
                if os.stat(mountpoint).st_dev != parent:
                    print('hangfs: mounted', flush=True)
                    return
            except OSError:
                pass
            time.sleep(0.01)
        print('hangfs: mount did not appear', flush=True)

    threading.Thread(target=announce, daemon=True).start()
    FUSE(fs, mountpoint, foreground=True, nothreads=False, default_permissions=True)


if __name__ == '__main__':
    main()
