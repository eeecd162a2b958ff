"""GuiScheduler and the lifetime helpers: values emitted on worker threads arrive on the GUI thread."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel
from reactivex import operators as ops
from reactivex.subject import Subject

from appusers.bindings.qt import GuiScheduler, bind, dispose_with

from ._qt_helpers import GUI_THREAD

pytestmark = pytest.mark.usefixtures("qapp")


def run_workers(count: int, target: Any) -> None:
    workers = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)


def test_actions_scheduled_from_worker_threads_run_on_the_gui_thread(qtbot: Any) -> None:
    scheduler = GuiScheduler.instance()
    ran: list[tuple[int, int | None]] = []
    senders: set[int | None] = set()

    def worker(i: int) -> None:
        senders.add(threading.get_ident())
        for j in range(50):
            scheduler.schedule(lambda _s, _st, i=i, j=j: ran.append((i * 100 + j, threading.get_ident())))

    run_workers(8, worker)
    qtbot.waitUntil(lambda: len(ran) == 400, timeout=5000)
    assert {thread for _, thread in ran} == {GUI_THREAD}
    assert GUI_THREAD not in senders
    # Per sending thread, actions keep their order.
    for i in range(8):
        mine = [n for n, _ in ran if n // 100 == i]
        assert mine == sorted(mine)


def test_observe_on_moves_subject_values_to_the_gui_thread(qtbot: Any) -> None:
    subject: Subject[int] = Subject()
    seen: list[tuple[int, int | None]] = []
    subject.pipe(ops.observe_on(GuiScheduler.instance())).subscribe(
        lambda v: seen.append((v, threading.get_ident()))
    )
    run_workers(4, lambda i: [subject.on_next(i * 10 + k) for k in range(10)])
    qtbot.waitUntil(lambda: len(seen) == 40, timeout=5000)
    assert {thread for _, thread in seen} == {GUI_THREAD}
    assert sorted(v for v, _ in seen) == list(range(40))


def test_disposed_action_never_runs(qtbot: Any) -> None:
    scheduler = GuiScheduler.instance()
    ran: list[str] = []
    cancelled = scheduler.schedule(lambda *_: ran.append("cancelled"))
    cancelled.dispose()
    scheduler.schedule(lambda *_: ran.append("kept"))
    qtbot.waitUntil(lambda: ran == ["kept"], timeout=2000)
    qtbot.wait(20)
    assert ran == ["kept"]


def test_relative_schedule_waits_and_runs_on_the_gui_thread(qtbot: Any) -> None:
    scheduler = GuiScheduler.instance()
    ran: list[tuple[float, int | None]] = []
    started = time.monotonic()
    threading.Thread(
        target=lambda: scheduler.schedule_relative(
            0.15, lambda *_: ran.append((time.monotonic() - started, threading.get_ident()))
        )
    ).start()
    qtbot.waitUntil(lambda: len(ran) == 1, timeout=3000)
    elapsed, thread = ran[0]
    assert elapsed >= 0.14
    assert thread == GUI_THREAD


def test_periodic_schedule_stops_when_disposed(qtbot: Any) -> None:
    scheduler = GuiScheduler.instance()
    ticks: list[int | None] = []
    disposable = scheduler.schedule_periodic(0.01, lambda state: ticks.append(threading.get_ident()))
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=3000)
    disposable.dispose()
    qtbot.wait(30)  # let the stop reach the GUI thread
    count = len(ticks)
    qtbot.wait(60)
    assert len(ticks) == count
    assert set(ticks) == {GUI_THREAD}


def test_is_gui_thread() -> None:
    scheduler = GuiScheduler.instance()
    assert scheduler.is_gui_thread()
    answers: list[bool] = []
    run_workers(1, lambda _: answers.append(scheduler.is_gui_thread()))
    assert answers == [False]


def test_bind_delivers_on_the_gui_thread_and_dies_with_the_widget(qtbot: Any) -> None:
    subject: Subject[str] = Subject()
    label = QLabel()
    threads: list[int | None] = []

    def show(text: str) -> None:
        threads.append(threading.get_ident())
        label.setText(text)

    bind(label, subject, show)
    run_workers(1, lambda _: subject.on_next("from a worker"))
    qtbot.waitUntil(lambda: label.text() == "from a worker", timeout=3000)
    assert threads == [GUI_THREAD]

    assert len(subject.observers) == 1
    gone: list[bool] = []
    label.destroyed.connect(lambda *_: gone.append(True))
    label.deleteLater()
    qtbot.waitUntil(lambda: gone == [True], timeout=3000)
    assert subject.observers == []  # the subscription went with the widget
    run_workers(1, lambda _: subject.on_next("after"))  # nobody there: nothing breaks
    qtbot.wait(20)
    assert threads == [GUI_THREAD]


def test_values_queued_for_a_deleted_widget_are_dropped(qtbot: Any) -> None:
    subject: Subject[str] = Subject()
    label = QLabel()
    calls: list[str] = []
    bind(label, subject, calls.append)
    subject.on_next("queued")  # posted to the GUI thread, not yet delivered
    shiboken6.delete(label)  # the C++ object goes before the queued value is delivered
    qtbot.wait(30)
    assert calls == []
    assert subject.observers == []


def test_bind_holds_bound_methods_weakly(qtbot: Any) -> None:
    class Sink:
        def __init__(self) -> None:
            self.got: list[int] = []

        def take(self, value: int) -> None:
            self.got.append(value)

    owner = QObject()
    sink = Sink()
    subject: Subject[int] = Subject()
    bind(owner, subject, sink.take)
    subject.on_next(1)
    got = sink.got
    qtbot.waitUntil(lambda: got == [1], timeout=2000)
    ref = weakref.ref(sink)
    del sink
    gc.collect()
    assert ref() is None  # the subscription did not keep the sink alive
    subject.on_next(2)  # and a value after that is simply dropped
    qtbot.wait(20)
    shiboken6.delete(owner)


def test_dispose_with_disposes_on_destroyed(qtbot: Any) -> None:
    owner = QObject()
    disposed: list[bool] = []

    class Flag:
        def dispose(self) -> None:
            disposed.append(True)

    group = dispose_with(owner, Flag())  # type: ignore[arg-type]
    shiboken6.delete(owner)
    assert disposed == [True]
    group.dispose()  # idempotent
    assert disposed == [True]
