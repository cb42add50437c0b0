"""Test trees for the folder share, and what a tree looks like through a mount: shared
by the loopback integration tests and the NAT-lab tests."""
import hashlib
import os
import stat
import threading
import time

BIG = 200 * 1024 * 1024 + 4321
SMALL_FILES = 10_000
THREE_MIB = 3 * 1024 * 1024 + 17


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_pattern(path, size):
    """`size` pseudo-random bytes (fast: one random MiB repeated with a counter)."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        written = 0
        n = 0
        while written < size:
            block[0:8] = n.to_bytes(8, "big")
            take = min(len(block), size - written)
            f.write(block[:take])
            written += take
            n += 1


def make_tree(base, big=False, many=False, small_files=SMALL_FILES):
    """A shared folder at base/a-side/shared folder with empty files, names with spaces
    and non-ASCII, nested folders, symlinks inside and out of the tree, a FIFO, and
    optionally a 200 MiB file and `small_files` small files. A's side lives one level
    deeper than where tests mount B, so a link climbing out of A's folder names a file
    that exists on A but not beside B's mount point (both are on one machine)."""
    root = os.path.join(base, "a-side", "shared folder")
    os.makedirs(os.path.join(root, "nested", "deeper", "deepest"))
    open(os.path.join(root, "empty"), "wb").close()
    open(os.path.join(root, "nested", "deeper", "also empty"), "wb").close()
    with open(os.path.join(root, "name with spaces.txt"), "w") as f:
        f.write("spaces\n")
    with open(os.path.join(root, "näme-ünïcødé-日本語.txt"), "w") as f:
        f.write("unicode\n")
    write_pattern(os.path.join(root, "nested", "deeper", "deepest", "three MiB.bin"), THREE_MIB)
    os.chmod(os.path.join(root, "name with spaces.txt"), 0o640)
    os.symlink("nested/deeper/deepest/three MiB.bin", os.path.join(root, "inside link"))
    os.symlink("../deeper", os.path.join(root, "nested", "deeper", "dir link"))
    # Links out of the tree: served as links, never followed on A.
    secret = os.path.join(base, "a-side", "outside-secret")
    with open(secret, "w") as f:
        f.write("A's file outside the share\n")
    os.symlink("../outside-secret", os.path.join(root, "escape"))
    os.symlink(secret, os.path.join(root, "absolute escape"))
    os.mkfifo(os.path.join(root, "a fifo"))  # special files are not served
    if big:
        write_pattern(os.path.join(root, "big.bin"), BIG)
    if many:
        many_dir = os.path.join(root, "many")
        os.makedirs(many_dir)
        for i in range(small_files):
            with open(os.path.join(many_dir, f"f{i:05d}"), "wb") as f:
                f.write(i.to_bytes(4, "big") * (i % 64))
    # Fixed, distinct mtimes so the comparison means something.
    for i, (dirpath, _dirnames, filenames) in enumerate(os.walk(root)):
        for j, name in enumerate(filenames):
            full = os.path.join(dirpath, name)
            if not os.path.islink(full) and name != "a fifo":
                os.utime(full, ns=(1_600_000_000_123_456_789 + i * 1000 + j,) * 2)
    return root


def snapshot(root, contents=True):
    """{relative path: (type, size, permission bits, mtime ns, link target or digest)}"""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(full)
            elif stat.S_ISREG(st.st_mode) and contents:
                extra = sha256_of(full)
            else:
                extra = None
            out[rel] = (stat.S_IFMT(st.st_mode), st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                        stat.S_IMODE(st.st_mode), st.st_mtime_ns, extra)
    return out


def assert_same_view(test, root, mnt):
    """B's view at `mnt` matches A's folder `root`: names (the FIFO left out), types,
    sizes, permission bits, mtimes and contents (SHA-256), link targets."""
    want = snapshot(root)
    del want["a fifo"]
    got = snapshot(mnt)
    test.assertEqual(sorted(got), sorted(want))
    for rel, (kind, size, mode, mtime, extra) in want.items():
        with test.subTest(path=rel):
            g = got[rel]
            test.assertEqual(g[0], kind)
            test.assertEqual(g[4], extra)
            if kind != stat.S_IFDIR:
                test.assertEqual(g[1], size)
            if kind != stat.S_IFLNK:
                test.assertEqual(g[2], mode)
            if kind == stat.S_IFREG:
                test.assertEqual(g[3], mtime)


def assert_reader_fails_fast_when(test, path, vanish, errnos, within_s=10, timeout_s=30):
    """Reads `path` slowly on a thread; once the first read returned, calls `vanish()`
    (kill peer A). The reader must end with one of `errnos` within `within_s` seconds of
    that, never hang."""
    outcome = {}
    reading = threading.Event()

    def slow_reader():
        try:
            with open(path, "rb", buffering=0) as f:
                while f.read(64 * 1024):
                    reading.set()
                    time.sleep(0.002)
            outcome["result"] = "read to the end"
        except OSError as e:
            outcome["result"] = e.errno
            outcome["at"] = time.monotonic()

    t = threading.Thread(target=slow_reader)
    t.start()
    test.assertTrue(reading.wait(timeout_s), "the first read did not complete")
    vanished = time.monotonic()
    vanish()
    t.join(timeout_s)
    test.assertFalse(t.is_alive(), "the reader hung after A vanished")
    test.assertIn(outcome.get("result"), errnos)
    test.assertLess(outcome["at"] - vanished, within_s)
