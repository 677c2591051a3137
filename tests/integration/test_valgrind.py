"""The agent under valgrind memcheck (issue 11): a short run through its
main paths - initial list, watch events, a reconnect after a dropped
stream and one after garbage, a 410 relist, SIGTERM - with the file sink
and metrics on. valgrind's exit code is 0 only without memory errors and
without definite or indirect leaks at exit. Skipped (with a message) when
valgrind is not installed; scripts/deps.sh installs it. Suppressions:
tests/valgrind.supp (third-party noise only, each commented)."""
import os
import re
import shutil
import unittest

from kwb import BUILD, SRC, TestCase, main, pod, wait_for

VALGRIND = shutil.which("valgrind")
SUPP = os.path.join(SRC, "tests", "valgrind.supp")


def sanitized_build():
    """The sanitizers of this build (valgrind cannot run them)."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            m = re.search(r"^KWB_SANITIZE:\w+=(.*)$", f.read(), re.M)
    except FileNotFoundError:
        return ""
    return m.group(1).strip() if m else ""


@unittest.skipIf(VALGRIND is None,
                 "valgrind not installed (scripts/deps.sh installs it)")
@unittest.skipIf(sanitized_build(), "build uses -fsanitize=%s; valgrind runs "
                 "on the plain build only" % sanitized_build())
class Valgrind(TestCase):
    api_options = {"bookmark_interval": 0.3}

    def test_main_paths_clean_under_memcheck(self):
        for i in range(5):
            self.api.create("pods", pod("listed-%d" % i))
        vlog = os.path.join(self.tmp, "valgrind.log")
        wrapper = [VALGRIND, "--leak-check=full", "--error-exitcode=99",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--show-leak-kinds=definite,indirect",
                   "--num-callers=30", "--log-file=" + vlog]
        if os.path.exists(SUPP):
            wrapper.append("--suppressions=" + SUPP)
        agent = self.agent(metrics=True, watch_defaults={
            "watch_list": "off"}).start(wrapper=wrapper)
        agent.wait_events(5, timeout=120)

        def watches():
            return [r for r in self.api.request_log()
                    if r.get("watch") and r["path"] == "/api/v1/pods"]
        wait_for(watches, 60, what="the agent's watch")
        self.api.create("pods", pod("w-0"))
        self.api.patch("pods", "w-0", {"metadata": {"labels": {"v": "2"}}})
        agent.wait_events(7, timeout=60)
        # reconnects: a cut stream, a garbage line
        for i, fault in enumerate((
                lambda: self.api.drop_watches("mid_event"),
                lambda: self.api.inject_garbage("not json {{{"))):
            before = len(watches())
            fault()
            self.api.create("pods", pod("r-%d" % i))
            wait_for(lambda: len(watches()) > before, 60,
                     what="reconnect %d" % i)
            agent.wait_events(8 + i, timeout=60)
        # a 410 during a gap: relist with a diff
        self.api.stall_watches()
        self.api.delete("pods", "listed-0")
        self.api.compact()
        self.api.unstall_watches()
        self.api.drop_watches("between")
        agent.wait_events(10, timeout=60)
        self.assertEqual(agent.http_status("/metrics"), 200)
        rc = agent.stop(timeout=120)
        with open(vlog) as f:
            report = f.read()
        self.assertEqual(rc, 0, "valgrind exit %s; report:\n%s" %
                         (rc, report[-6000:]))
        self.assertRegex(report, r"ERROR SUMMARY: 0 errors")
        m = re.search(r"definitely lost: ([\d,]+) bytes", report)
        if m:   # absent when every block was freed
            self.assertEqual(m.group(1), "0", report[-6000:])
        m = re.search(r"indirectly lost: ([\d,]+) bytes", report)
        if m:
            self.assertEqual(m.group(1), "0", report[-6000:])
        events = agent.events()
        self.assertEqual(len(events), 10)
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)


if __name__ == "__main__":
    main()
