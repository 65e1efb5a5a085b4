"""The recogniser's worker process, for real: answers, crashes, restarts, refusals and stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from gateway.recognizer import LocalRecognizer
from gateway.recognizer.frames import FrameDecoder, encode_frame
from gateway.recognizer.remote import WorkerProcess
from gateway.recognizer.text_model import TextIntentModel
from schemas.config import RecognizerConfig

TEXTS = [
    "turn off the kitchen lights",
    "change the bedroom lights to blue",
    "tell me a joke",
    "dim the hall lights",
    "what is the weather tomorrow",
] * 8


@pytest.fixture(scope="module")
def model() -> TextIntentModel:
    return TextIntentModel.load()


async def _until(condition: object, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_worker_answers_exactly_what_the_model_answers(model: TextIntentModel) -> None:
    recognizer = LocalRecognizer(model, RecognizerConfig(worker="process", batch_window_ms=1))
    assert recognizer.worker is not None
    async with asyncio.TaskGroup() as group:
        service = group.create_task(recognizer.run())
        await _until(lambda: recognizer.worker is not None and recognizer.worker.ready)
        pid = recognizer.worker.pid
        assert pid is not None and pid != os.getpid()
        intents = await asyncio.gather(*(recognizer.submit(text) for text in TEXTS))
        service.cancel()
    assert intents == model.predict(TEXTS)
    assert recognizer.batcher.stats.offloaded >= 1
    assert recognizer.batcher.stats.offloaded == recognizer.batcher.stats.batches
    assert not _alive(pid), "the worker outlived the recogniser's cancellation"


async def test_a_batch_lost_with_its_worker_is_answered_and_the_worker_restarts(
    model: TextIntentModel,
) -> None:
    recognizer = LocalRecognizer(model, RecognizerConfig(worker="process", max_batch=512))
    worker = recognizer.worker = WorkerProcess(
        model=None, threshold=model.threshold, threads=1, sha256=model.sha256,
        restart_delays=(0.05, 0.05),
    )
    texts = TEXTS * 40  # 1,600 texts: the worker needs far longer than the kill takes
    async with asyncio.TaskGroup() as group:
        service = group.create_task(recognizer.run())
        await _until(lambda: worker.ready)
        first = worker.pid
        assert first is not None
        answers = asyncio.gather(*(recognizer.submit(text) for text in texts))
        await _until(lambda: worker.counters["batches"] >= 1, within=5)
        os.kill(first, signal.SIGKILL)
        intents = await answers
        await _until(lambda: worker.ready and worker.pid != first)
        again = await recognizer.submit("turn off the kitchen lights")
        service.cancel()
    assert intents == model.predict(texts)  # nothing dropped: the lost batches ran here
    assert worker.counters["exits"] == 1 and worker.counters["starts"] == 2
    assert again.name == "iot_hue_lightoff"


async def test_without_a_ready_worker_the_gateway_recognises_in_a_thread(
    model: TextIntentModel,
) -> None:
    """A worker that loaded other model bytes is refused; commands are still recognised."""
    recognizer = LocalRecognizer(model, RecognizerConfig(worker="process"))
    worker = recognizer.worker = WorkerProcess(
        model=None, threshold=model.threshold, threads=1, sha256="0" * 64,
        restart_delays=(0.05, 0.1),
    )
    async with asyncio.TaskGroup() as group:
        service = group.create_task(recognizer.run())
        await _until(lambda: worker.counters["exits"] >= 1)
        intent = await recognizer.submit("turn off the kitchen lights")
        service.cancel()
    assert intent.name == "iot_hue_lightoff"
    assert not worker.ready and worker.counters["batches"] == 0
    assert recognizer.batcher.stats.offloaded == 0 and recognizer.batcher.stats.batches == 1


async def test_the_thread_setting_starts_no_process(model: TextIntentModel) -> None:
    recognizer = LocalRecognizer(model, RecognizerConfig(worker="thread"))
    async with asyncio.TaskGroup() as group:
        service = group.create_task(recognizer.run())
        intent = await recognizer.submit("turn off the kitchen lights")
        service.cancel()
    assert recognizer.worker is None and intent.name == "iot_hue_lightoff"
    assert recognizer.batcher.stats.offloaded == 0


def test_the_worker_program_answers_errors_per_batch_and_exits_at_eof() -> None:
    requests = [["turn off the kitchen lights"], "not a list", ["tell me a joke", "dim the hall"]]
    done = subprocess.run(
        [sys.executable, "-m", "gateway.recognizer.worker"],
        input=b"".join(encode_frame(request) for request in requests),
        capture_output=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    ready, first, bad, last = FrameDecoder().feed(done.stdout)
    assert ready["ready"]["sha256"] == TextIntentModel.load().sha256
    assert first == {"ok": [["iot_hue_lightoff", first["ok"][0][1], {"house_place": "kitchen"}]]}
    assert bad == {"error": "a request is a list of texts"}
    assert [name for name, _, _ in last["ok"]] == ["other", "iot_hue_lightdim"]
