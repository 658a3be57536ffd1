#!/usr/bin/env python3
"""Feeds the built binary release archives it has never seen: valid fixture releases (zip, tar.gz,
tar.zst) with random byte flips, splices, truncations and appended garbage. Each archive is passed
with its own SHA-256, so only the archive handling stands between it and the site.

After every run: the exit status is 0, 1 or 4 (never a crash or a signal), stderr is one line when
it is not 0, and the site is exactly the old or the new version with nothing left in the work area.
One exception is counted, not failed: a mutation inside a gzip body can decode to other bytes that
still form a valid tar, and libarchive does not check the gzip CRC (a TODO in its gzip filter).
The archive's SHA-256 is the one the agent was given, so such a release is, to the agent, the
verified one; it is installed only if its manifest and smoke checks pass, and then must be whole
(journal succeeded, `verify` passes).
Not a test (random by design); `make fuzz` runs it and prints figures.

usage: archive-fuzz.py BINARY [ITERATIONS] [SEED]
"""
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from importlib import import_module

stress = import_module("crash-stress")


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["flip", "flip", "splice", "truncate", "append", "zero"])
        if not data:
            break
        at = rng.randrange(len(data))
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                spot = rng.randrange(len(data))
                data[spot] ^= 1 << rng.randrange(8)
        elif kind == "splice":
            length = rng.randint(1, 64)
            source = rng.randrange(len(data))
            data[at:at + length] = data[source:source + length]
        elif kind == "truncate":
            del data[at:]
        elif kind == "append":
            data += os.urandom(rng.randint(1, 512))
        else:
            data[at:at + rng.randint(1, 32)] = bytes(rng.randint(1, 32))
    return bytes(data)


def main():
    binary = os.path.abspath(sys.argv[1])
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
    rng = random.Random(seed)
    base = tempfile.mkdtemp(prefix="molam-fuzz-")
    originals = [stress.release(base, "4.0.0", fmt) for fmt in ("zip", "tar.gz")]
    zst = os.path.join(base, "molam-form-4.0.0.tar.zst")
    subprocess.run(["tar", "-C", os.path.join(stress.FIXTURES, "4.0.0"), "--zstd", "-cf", zst, "molam-form"],
                   check=True)
    originals.append((zst, None))

    site = stress.Site(base, binary)
    references = {"3.9.0": (stress.tree_snapshot(site.plugin), stress.table_dump(site.db))}
    upgraded = stress.Site(base, binary)
    assert upgraded.run("upgrade", "--archive", originals[0][0], "--sha256", originals[0][1]).returncode == 0
    references["4.0.0"] = (stress.tree_snapshot(upgraded.plugin), stress.table_dump(upgraded.db))
    upgraded.remove()

    statuses = {}
    failures = []
    different = 0
    for index in range(iterations):
        path, _ = rng.choice(originals)
        with open(path, "rb") as handle:
            data = mutate(handle.read(), rng)
        candidate = os.path.join(base, "fuzz-%d%s" % (index, path[path.index("."):]))
        with open(candidate, "wb") as handle:
            handle.write(data)
        digest = hashlib.sha256(data).hexdigest()
        result = site.run("upgrade", "--archive", candidate, "--sha256", digest)
        statuses[result.returncode] = statuses.get(result.returncode, 0) + 1
        problem = None
        if result.returncode not in (0, 1, 4):
            problem = "exit %d: %s" % (result.returncode, result.stderr.strip()[-300:])
        elif result.returncode != 0 and len(result.stderr.strip().splitlines()) != 1:
            problem = "stderr is not one line: %r" % result.stderr[-300:]
        else:
            try:
                if result.returncode == 0 and stress.tree_snapshot(site.plugin) not in [t for t, _ in references.values()]:
                    verified = site.run("verify")
                    if verified.returncode != 0:
                        raise AssertionError("accepted a mutated release that fails verify: %s" % verified.stderr)
                    different += 1
                    site.remove()
                    site = stress.Site(base, binary)
                    os.unlink(candidate)
                    continue
                version = stress.check(site, references, "fuzz #%d" % index)
                if version == "4.0.0":
                    # A mutation the archive format shrugged off: start again from the old version.
                    site.remove()
                    site = stress.Site(base, binary)
            except AssertionError as error:
                problem = str(error)
        if problem:
            kept = os.path.join(base, "failing-%d" % index)
            shutil.copy(candidate, kept)
            failures.append(problem)
            print("FAIL #%d (%s): %s" % (index, kept, problem), file=sys.stderr)
            site = stress.Site(base, binary)
        os.unlink(candidate)

    print("archive fuzz (seed %d): %d mutated releases; exit statuses %s; %d installed with other bytes "
          "that still passed the manifest and smoke checks (gzip CRC unchecked by libarchive); failures: %d"
          % (seed, iterations, dict(sorted(statuses.items())), different, len(failures)))
    if not failures:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
