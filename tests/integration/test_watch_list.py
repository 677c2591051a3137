"""Streaming lists (issue 5 item 7): where the server supports
sendInitialEvents, the initial sync and relists use it (initial events,
then the initial-events-end bookmark); a server that rejects it or ignores
it gets paginated LIST instead. Either way the same events arrive."""
import time

from kwb import TestCase, main, pod, wait_for, watch_conf


def requests(api):
    """The agent's requests (the test's own lists carry no limit)."""
    return [r for r in api.request_log() if r["path"] == "/api/v1/pods" and
            (r.get("watch") or "limit=" in r["query"])]


class WatchList(TestCase):
    api_options = {"bookmark_interval": 0.3}

    def sync_and_change(self, **agent_kw):
        for i in range(12):
            self.api.create("pods", pod("w-%d" % i))
        agent = self.agent(metrics=True, **agent_kw).start()
        agent.wait_events(12)
        wait_for(lambda: agent.http_status("/readyz") == 200,
                 what="readyz")
        self.api.patch("pods", "w-0", {"metadata": {"labels": {"v": "2"}}})
        self.api.delete("pods", "w-1")
        # Both changes come by watch before the gap starts.
        agent.wait_events(14)
        # A gap with compaction: the relist takes the same path.
        self.api.stall_watches()
        time.sleep(0.2)
        self.api.create("pods", pod("late"))
        self.api.delete("pods", "w-2")
        self.api.compact()
        self.api.unstall_watches()
        self.api.drop_watches("between")
        agent.wait_events(16)
        time.sleep(0.5)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 16)
        self.assertNoDuplicates(events)
        self.assertTrue(all(e["type"] == "ADDED" and e["origin"] == "list"
                            for e in events[:12]))
        self.assertEqual(sorted((e["type"], e["name"], e["origin"])
                                for e in events[14:]),
                         [("ADDED", "late", "list"),
                          ("DELETED", "w-2", "list")])
        for e in events:
            self.assertEnvelope(e)
        self.assertMatchesServer(events)
        return agent

    def test_streaming_list_used_when_supported(self):
        agent = self.sync_and_change()
        reqs = requests(self.api)
        self.assertFalse([r for r in reqs if not r.get("watch")],
                         "no paginated LIST needed")
        streamed = [r for r in reqs if "sendInitialEvents=true" in r["query"]]
        self.assertEqual(len(streamed), 2, "initial sync and the relist")
        self.assertIn("watch-list", agent.log())

    def test_rejected_falls_back_to_paginated_list(self):
        self.api.configure(watch_list="reject")
        self.sync_and_change(watch_defaults={"list_page_size": 5})
        lists = [r for r in requests(self.api) if not r.get("watch")]
        self.assertGreaterEqual(len(lists), 3 + 3)

    def test_ignored_falls_back_to_paginated_list(self):
        self.api.configure(watch_list="ignore")
        self.sync_and_change()
        lists = [r for r in requests(self.api) if not r.get("watch")]
        self.assertGreaterEqual(len(lists), 2)

    def test_off_never_asks(self):
        self.sync_and_change(watch_defaults={"watch_list": "off"})
        self.assertFalse([r for r in requests(self.api)
                          if "sendInitialEvents" in r["query"]])

    def test_initial_skip_with_streaming_list(self):
        for i in range(3):
            self.api.create("pods", pod("old-%d" % i))
        agent = self.agent(initial="skip",
                           watches=[watch_conf("v1", "pods")]).start()
        wait_for(lambda: agent.checkpoint() is not None, what="checkpoint")
        self.api.create("pods", pod("new"))
        agent.wait_events(1)
        agent.stop()
        self.assertEqual([e["name"] for e in agent.events()], ["new"])


if __name__ == "__main__":
    main()
