"""A checkpoint being written does not hold up events (issue 10, latency).

Checkpoints are written by a writer thread beside the pipeline: while a
watch's checkpoint write is in flight, its events still go to the sinks;
only applying their acks to the checkpoint waits for the write. Here the
configmap backend's write hangs at the API server (answered with a 500 after
9 s, below the agent's 10 s request timeout). Events created meanwhile reach
the file sink, in order, before that write is answered; afterwards the
checkpoint catches up with every one of them and the agent stops cleanly.
"""
from agentpair import cm_checkpoint, cm_replica
from kwb import TestCase, main, pod, wait_for

HANG_S = 9


class CheckpointWriter(TestCase):

    def test_events_flow_while_a_checkpoint_write_hangs(self):
        agent = cm_replica(self, "solo", leader=False).start()
        self.api.create("pods", pod("w-0"))
        agent.wait_events(1)
        wait_for(lambda: cm_checkpoint(self.api), 10,
                 what="the first checkpoint")

        self.api.fail_next(count=1, code=500, verb="update",
                           path="configmaps", hang=HANG_S)
        self.api.clear_request_log()
        # A new event makes the checkpoint dirty: the next round's write
        # hangs.
        self.api.create("pods", pod("w-1"))
        wait_for(lambda: self.api.state()["faults"][0]["hits"] == 1, 10,
                 what="a checkpoint write in flight")

        for i in range(2, 7):
            self.api.create("pods", pod("w-%d" % i))
        events = agent.wait_events(7)

        def hung_write_answered():
            return [r for r in self.api.request_log()
                    if r["resource"] == "configmaps" and r["status"] == 500]
        # Ordering, not timing: every event was durable in the sink before
        # the hanging checkpoint write was answered.
        self.assertEqual(hung_write_answered(), [],
                         "events waited for the checkpoint write")
        self.assertEqual([e["name"] for e in events],
                         ["w-%d" % i for i in range(7)])

        wait_for(hung_write_answered, 20, what="the hanging write answered")
        last = events[-1]["resourceVersion"]

        def caught_up():
            cp = cm_checkpoint(self.api)
            return cp and cp[1] == last and len(cp[2]) == 7 and cp[3]
        wait_for(caught_up, 20, what="the checkpoint to catch up")
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(len(agent.events()), 7, "nothing delivered twice")


if __name__ == "__main__":
    main()
