"""Pilot tests of fluxgym_coach.tui.plugin_views in a tiny host app (and with a real plugin Project)."""

import asyncio
from enum import Enum

from textual.app import App, ComposeResult
from textual.widgets import Checkbox, DataTable, Input, Label, ProgressBar, Select

from fluxgym_coach.plugins import (ActionContext, ActionResult, FunctionDescription, Group, Notif,
                                   NotifFunction, NotifType, ParamDescription, Score, ScoreList, Task, TaskQueue)
from fluxgym_coach.tui.plugin_views import (ActionResultScreen, FunctionForm, NotificationsScreen, PluginSession,
                                            TaskProgressPanel, notify_result, palette_actions, params_description)


class Host(App[None]):
    def __init__(self):
        super().__init__()
        self.dismissed: list = []

    def compose(self) -> ComposeResult:
        yield Label("host")

    def open(self, screen) -> None:
        self.push_screen(screen, callback=self.dismissed.append)


def _result() -> ActionResult:
    return ActionResult(groups=[
        Group(ids=[1, 2, 3], name="Near duplicates of a.png",
              scores=ScoreList([0.0, 9.0, 4.0], 0, 64, "distance", max_is_best=False),
              score=Score(9.0, 0, 64, "largest distance", max_is_best=False)),
        Group(ids=[4, 5], name="Near duplicates of d.png",
              scores=ScoreList([0.0, 2.0], 0, 64, "distance", max_is_best=False),
              score=Score(2.0, 0, 64, "largest distance", max_is_best=False)),
    ], notifs=[Notif(NotifType.INFO, "near_duplicates", "2 groups",
                     functions=[NotifFunction("similarity.find_similar", ActionContext(instance_ids=[1]),
                                              "Find similar")])])


LABELS = {1: "a.png", 2: "b.png", 3: "c.png", 4: "d.png", 5: "e.png"}


async def test_group_result_is_a_sorted_filtered_list():
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = ActionResultScreen(_result(), LABELS, "Near duplicates")
        app.open(screen)
        await pilot.pause()
        groups = screen.query_one("#groups", DataTable)
        # lower is better here (max_is_best False): the group with score 2 comes first
        assert [groups.get_row_at(i)[0] for i in range(groups.row_count)] == [
            "Near duplicates of d.png", "Near duplicates of a.png"]
        assert screen.visible_items() == [("d.png", 0.0), ("e.png", 2.0)]
        await pilot.press("down")
        assert screen.visible_items() == [("a.png", 0.0), ("c.png", 4.0), ("b.png", 9.0)]
        await pilot.press("s")  # worst first
        assert [groups.get_row_at(i)[0] for i in range(groups.row_count)][0] == "Near duplicates of a.png"
        assert screen.visible_items()[0] == ("b.png", 9.0)
        await pilot.press("s")  # as returned
        assert screen.visible_items() == [("a.png", 0.0), ("b.png", 9.0), ("c.png", 4.0)]
        await pilot.press("s")  # best first again
        await pilot.press("slash")
        await pilot.press(*"c.png")
        assert groups.row_count == 1 and screen.visible_items() == [("c.png", 4.0)]
        screen.query_one("#filter", Input).value = "<=3"  # numeric filter on the score
        await pilot.pause()
        assert screen.filter_text == "<=3"
        assert screen.visible_items() == [("d.png", 0.0), ("e.png", 2.0)]
        await pilot.press("enter")  # back to the groups
        await pilot.press("enter")  # into the images
        items = screen.query_one("#items", DataTable)
        assert items.has_focus
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.dismissed == ["e.png"]


async def test_notifications_are_toasts_with_suggested_functions():
    app = Host()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        result = _result()
        result.notifs.append(Notif(NotifType.ERROR, "demo.boom", "ZeroDivisionError: division by zero",
                                   data={"traceback": "Traceback...\nZeroDivisionError"}))
        assert notify_result(app, result) == 2
        await pilot.pause()
        toasts = list(app.screen.query("Toast"))
        assert len(toasts) == 2
        texts = [str(t.render()) for t in toasts]
        assert any("Suggested: Find similar" in t for t in texts)
        assert any("ZeroDivisionError" in t for t in texts)
        screen = NotificationsScreen(result.notifs)
        app.open(screen)
        await pilot.pause()
        assert "Traceback" in str(screen.query("Static").last().render())
        await pilot.click("#fn-0-0")
        await pilot.pause()
        (chosen,) = app.dismissed
        assert chosen.function == "similarity.find_similar" and chosen.context.instance_ids == [1]


class Mode(Enum):
    fast = "fast"
    slow = "slow"


async def test_form_generated_from_a_function_description():
    desc = FunctionDescription(id="p.f", name="f", label="Do it", description="Does it.", params=[
        ParamDescription(name="count", type="int", default_value=3, required=False),
        ParamDescription(name="ratio", type="float", required=True),
        ParamDescription(name="flag", type="bool", default_value=False),
        ParamDescription(name="mode", type="enum", possible_values=["fast", "slow"], default_value="fast"),
        ParamDescription(name="vec", type="vector_type"),
        ParamDescription(name="note", type="str"),
    ])
    app = Host()
    async with app.run_test(size=(120, 50)) as pilot:
        form = FunctionForm(desc, {"vector_type": [("phash64", 1), ("colour", 2)]})
        app.open(form)
        await pilot.pause()
        assert isinstance(form.query_one("#p-flag"), Checkbox)
        assert isinstance(form.query_one("#p-mode"), Select) and form.query_one("#p-mode", Select).value == "fast"
        await pilot.press("ctrl+s")  # ratio is required
        await pilot.pause()
        assert "ratio is required" in str(form.query_one("#error", Label).render()) and not app.dismissed
        form.query_one("#p-ratio", Input).value = "0.5"
        form.query_one("#p-flag", Checkbox).value = True
        form.query_one("#p-mode", Select).value = "slow"
        form.query_one("#p-vec", Select).value = 2
        await pilot.click("#submit")
        await pilot.pause()
        assert app.dismissed == [{"count": 3, "ratio": 0.5, "flag": True, "mode": "slow", "vec": 2}]


async def test_task_progress_panel():
    class Step(Task):
        def __init__(self):
            super().__init__()
            self.key, self.name = "vectors", "Vectors"

        async def run(self):
            await asyncio.sleep(0)

    queue = TaskQueue(workers=1)

    class ProgressHost(App[None]):
        def compose(self) -> ComposeResult:
            yield TaskProgressPanel(queue)

    app = ProgressHost()
    async with app.run_test() as pilot:
        # empty, the panel takes no room and prints nothing (a bare Widget would print its name)
        assert not app.query_one(TaskProgressPanel).display
        for _ in range(3):
            queue.add_task(Step())
        await queue.join()
        await pilot.pause()
        panel = app.query_one(TaskProgressPanel)
        bar = panel.query_one(ProgressBar)
        assert (bar.total, bar.progress) == (3, 3) and panel.states["vectors"].done == 3
        assert panel.display
    await queue.close()


class ReviewLike(App[None]):
    """Stands for the review app: a dataset, a cursor, marks, and show_relpath."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self.shown: list[str] = []
        self.entries = []

    def compose(self) -> ComposeResult:
        yield Label("review")

    def on_mount(self) -> None:
        self.entries = palette_actions(self)

    def show_relpath(self, relpath: str) -> None:
        self.shown.append(relpath)


async def test_palette_actions_run_a_plugin_and_open_its_groups(plugin_project):
    root = plugin_project.base_path
    (root / "copy.png").write_bytes((root / "coffee.png").read_bytes())
    plugin_project.dataset.scan()
    app = ReviewLike(plugin_project.dataset)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        titles = [t for t, _, _ in app.entries]
        assert "Plugin: Near duplicates (similarity)" in titles and "Plugin: Enhance (core)" in titles
        assert "Plugin settings: similarity" in titles and "Plugin notifications" in titles
        assert "Plugin tasks" in titles
        session: PluginSession = app.plugin_session
        assert session.project.vector_types(source="similarity")  # plugins were started
        run = dict((t, cb) for t, cb, _ in app.entries)["Plugin: Near duplicates (similarity)"]
        run()  # has a parameter: a form opens
        await pilot.pause()
        assert isinstance(app.screen, FunctionForm)
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionResultScreen)
        assert sorted(label for label, _ in screen.visible_items()) == ["coffee.png", "copy.png"]
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert app.shown == ["coffee.png"]
        desc = params_description(session.project.plugins["similarity"])
        assert [p.name for p in desc.params] == ["compute_on_import", "near_duplicate_threshold", "clip_model"]
        # plugin params are editable from the TUI and persisted under <name>.base
        dict((t, cb) for t, cb, _ in app.entries)["Plugin settings: similarity"]()
        await pilot.pause()
        form = app.screen
        assert isinstance(form, FunctionForm)
        form.query_one("#p-near_duplicate_threshold", Input).value = "6"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert session.project.plugins["similarity"].params.near_duplicate_threshold == 6
        assert session.project.get_plugin_data("similarity.base")["near_duplicate_threshold"] == 6
        # the scan computed vectors in background tasks: their progress bar is under "Plugin tasks"
        from fluxgym_coach.plugins import scan_and_notify
        (root / "copy2.png").write_bytes((root / "horse.png").read_bytes())
        await scan_and_notify(session.project)
        await session.project.task_queue.join()
        dict((t, cb) for t, cb, _ in app.entries)["Plugin tasks"]()
        await pilot.pause()
        await pilot.pause()
        bar = app.screen.query_one(ProgressBar)
        # every image is announced: the new copy, and the 7 the fixture indexed without plugins
        assert (bar.total, bar.progress) == (8, 8)
