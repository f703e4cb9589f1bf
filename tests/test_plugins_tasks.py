"""Task and TaskQueue: ordering, priority, run_if_last, progress, errors reported."""

import asyncio

from fluxgym_coach.plugins import NotifType, Task, TaskQueue


class Recorder(Task):
    def __init__(self, log: list, label: str, key: str = "k", priority: bool = False, fail: bool = False,
                 delay: float = 0.0):
        super().__init__(priority=priority)
        self.log, self.label, self.fail, self.delay = log, label, fail, delay
        self.key = key
        self.name = f"Recorder {key}"

    async def run(self):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.log.append(self.label)
        if self.fail:
            raise ValueError(f"{self.label} failed")
        return self.label

    async def run_if_last(self):
        self.log.append(f"last:{self.key}:{self.label}")


async def test_priority_tasks_run_first_then_in_order():
    log: list[str] = []
    queue = TaskQueue(workers=1)
    for label in ("a", "b"):
        queue.add_task(Recorder(log, label))
    queue.add_task(Recorder(log, "urgent", priority=True))
    queue.add_task(Recorder(log, "c"))
    queue.add_task(Recorder(log, "urgent2", priority=True))
    assert await queue.join() == []
    runs = [x for x in log if not x.startswith("last:")]
    assert runs == ["urgent", "urgent2", "a", "b", "c"]
    await queue.close()


async def test_tasks_added_without_a_loop_run_at_join():
    log: list[str] = []
    queue = TaskQueue(workers=2)

    def sync_code():  # no running loop in this thread
        queue.add_task(Recorder(log, "x"))
        queue.add_task(Recorder(log, "y"))

    await asyncio.to_thread(sync_code)
    assert queue.pending == 2
    await queue.join()
    assert sorted(x for x in log if not x.startswith("last:")) == ["x", "y"]
    await queue.close()


async def test_run_if_last_runs_once_per_key_after_the_last_task():
    log: list[str] = []
    queue = TaskQueue(workers=3)
    states = []
    queue.on_update(lambda s: states.append((s.key, s.total, s.remain, s.done)))
    for n in range(4):
        queue.add_task(Recorder(log, f"v{n}", key="vectors", delay=0.001 * (4 - n)))
    queue.add_task(Recorder(log, "m0", key="maps"))
    await queue.join()
    lasts = [x for x in log if x.startswith("last:")]
    assert sorted(lasts)[0].startswith("last:maps:") and len(lasts) == 2
    vec_last = next(x for x in lasts if x.startswith("last:vectors:"))
    # run_if_last came after every vectors task and ran on the task that finished last
    assert log.index(vec_last) > max(log.index(f"v{n}") for n in range(4))
    finished_last = [x for x in log if x.startswith("v")][-1]
    assert vec_last == f"last:vectors:{finished_last}"
    st = queue.states["vectors"]
    assert (st.total, st.remain, st.done, st.failed, st.fraction) == (4, 0, 4, 0, 1.0)
    assert ("vectors", 4, 0, 4) in states and ("vectors", 1, 1, 0) in states
    # a new batch of the same key starts a new count and a new run_if_last
    queue.add_task(Recorder(log, "v9", key="vectors"))
    await queue.join()
    assert queue.states["vectors"].total == 1 and log[-1] == "last:vectors:v9"
    await queue.close()


async def test_errors_are_reported_not_only_logged(plugin_project):
    seen = []
    plugin_project.on_notif(seen.append)
    log: list[str] = []
    queue = plugin_project.task_queue
    queue.add_task(Recorder(log, "ok", key="batch"))
    queue.add_task(Recorder(log, "bad", key="batch", fail=True))
    errors = await queue.join()
    assert len(errors) == 1
    assert errors[0].message == "ValueError: bad failed" and "in run" in errors[0].traceback
    assert queue.states["batch"].failed == 1 and queue.states["batch"].done == 2
    assert "last:batch:" in log[-1]  # run_if_last still runs after a failure
    (notif,) = seen
    assert notif.type is NotifType.ERROR and notif.name == "task failed: Recorder batch"
    assert "bad failed" in notif.data["traceback"]


async def test_run_if_last_error_is_reported():
    class BadLast(Task):
        async def run(self):
            return 1

        async def run_if_last(self):
            raise RuntimeError("index rebuild failed")

    queue = TaskQueue(workers=1)
    got = []
    queue.on_error(got.append)
    queue.add_task(BadLast())
    errors = await queue.join()
    assert errors[0].in_run_if_last and "index rebuild failed" in errors[0].message
    assert got == errors
    await queue.close()


async def test_run_async_in_a_task_returns_the_value():
    class Heavy(Task):
        async def run(self):
            # run_async and the seed's spelling `_async` are the same helper
            return await self.run_async(sum, range(1000)) + await self._async(max, [1, 7, 3])

    queue = TaskQueue(workers=1)
    task = queue.add_task(Heavy())
    await queue.join()
    assert task.result == 499507
    await queue.close()
