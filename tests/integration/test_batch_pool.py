#!/usr/bin/env python3
"""The pipeline's batch pool after a burst (tests/helpers/pool_driver.c).

A list hands over many large batches at once; the pool then holds as many
as were in flight. Events trickling in afterwards need one small batch at
a time: the pool must let the others go (unused for a second) and must not
keep reusing one the burst filled (its pages would stay resident for as
long as events keep coming). The driver sleeps through 3 s of trickle, so
this is not a unit test.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("KWB_SOURCE_DIR",
                            os.path.normpath(os.path.join(HERE, "..", "..")))
BUILD_DIR = os.environ.get("KWB_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1") or 1)


def driver():
    for p in (os.path.join(BUILD_DIR, "tests", "pool_driver"),
              os.path.join(BUILD_DIR, "pool_driver")):
        if os.path.exists(p):
            return p
    raise unittest.SkipTest("pool_driver not built under %s" % BUILD_DIR)


class BatchPool(unittest.TestCase):
    def test_trickle_after_burst_keeps_one_small_batch(self):
        exe = driver()
        tmp = tempfile.mkdtemp(prefix="kwb-pool-")
        try:
            r = subprocess.run([exe, tmp], capture_output=True, text=True,
                               timeout=60 * MULT)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertIn("POOL ", r.stdout, r.stderr)
        fields = dict(kv.split("=") for kv in r.stdout.split()[1:])
        recycled, largest = int(fields["recycled"]), int(fields["largest"])
        burst, small = int(fields["burst"]), int(fields["small"])
        self.assertGreater(burst, 200000)
        self.assertLess(small, 10000)
        # One small batch cycles; the burst's are gone.
        self.assertLessEqual(recycled, 2, r.stdout)
        self.assertLess(largest, burst // 2, r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
