"""Edge-first recognition: the local model decides unless it is unsure and the cloud is up.

For each text command the local model answers first. Its answer stands when the cloud is off,
when the failover is DEGRADED, or when its confidence is at least ``escalate_below`` (and, with
``escalate_other``, it is not ``other``). Otherwise the text is escalated to the cloud with a
deadline: the cloud's answer decides when it arrives in time; a timeout, an unsendable request
or a refusal falls back to the local answer (or to the configured safe intent). Every outcome
says which recogniser made it and which model version, and escalations report their outcome
to the failover (a timeout or unsendable request is a miss).

Callbacks only, no tasks: the result is a future that the pipeline awaits or chains on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from gateway.recognizer.cloud import MISS_REASONS, CloudUnavailable
from gateway.recognizer.failover import Probe
from gateway.recognizer.text_model import OTHER
from schemas import Intent

__all__ = ["SAFE_ACTION", "CloudHealth", "EdgeFirstPolicy", "Recognition", "TextRecognizer"]

SAFE_ACTION = "safe_action"
"""`Recognition.recognizer` when the configured safe intent replaced a failed escalation."""


@dataclass(slots=True, unsafe_hash=True, init=False)
class Recognition:
    """The intent that decides, who recognised it and with which model version. One per
    command: not frozen, with its own __init__ (see `gateway.mqttsn.packets.Publish`)."""

    intent: Intent
    recognizer: str
    model_version: str

    def __init__(self, intent: Intent, recognizer: str, model_version: str) -> None:
        self.intent = intent
        self.recognizer = recognizer
        self.model_version = model_version


class TextRecognizer(Protocol):
    """Text -> a future intent (local model or cloud client)."""

    name: str
    version: str

    def submit(self, text: str) -> asyncio.Future[Intent]: ...


class CloudHealth(Protocol):
    """The failover as the policy sees it (`gateway.recognizer.heartbeat.CloudSupervisor`)."""

    @property
    def online(self) -> bool: ...

    def record(self, ok: bool, probe: Probe, reason: str = "") -> None: ...


class EdgeFirstPolicy:
    """``submit(text)`` -> a future `Recognition`; without a cloud, the local answer."""

    def __init__(
        self,
        local: TextRecognizer,
        cloud: TextRecognizer | None = None,
        health: CloudHealth | None = None,
        *,
        escalate_below: float = 0.0,
        escalate_other: bool = False,
        deadline_ms: float = 150.0,
        safe_intent: str = "",
    ) -> None:
        if (cloud is None) != (health is None):
            raise ValueError("a cloud recognizer needs its health (failover) and vice versa")
        self.local = local
        self.cloud = cloud
        self.health = health
        self._escalate_below = escalate_below
        self._escalate_other = escalate_other
        self._deadline = deadline_ms / 1000.0
        self._safe_intent = safe_intent
        self.counters: Counter[str] = Counter()

    def submit(self, text: str) -> asyncio.Future[Recognition]:
        """Raises what the local recogniser raises (Overloaded) at once."""
        local = self.local.submit(text)
        # The loop from a future at hand: get_running_loop() costs a getpid() on Python 3.11.
        result: asyncio.Future[Recognition] = local.get_loop().create_future()
        local.add_done_callback(lambda done: self._after_local(text, done, result))
        return result

    def wants_cloud(self, intent: Intent) -> bool:
        """Whether a local answer is to be escalated (ignoring the mode)."""
        if self.cloud is None:
            return False
        return intent.confidence < self._escalate_below or (
            self._escalate_other and intent.name == OTHER
        )

    def _after_local(
        self, text: str, local: asyncio.Future[Intent], result: asyncio.Future[Recognition]
    ) -> None:
        if result.done():
            return
        if local.cancelled():
            result.cancel()
            return
        error = local.exception()
        if error is not None:
            result.set_exception(error)
            return
        mine = Recognition(local.result(), self.local.name, self.local.version)
        if not self.wants_cloud(mine.intent):
            self.counters["local_confident"] += 1
            result.set_result(mine)
            return
        assert self.cloud is not None and self.health is not None
        if not self.health.online:
            self.counters["local_degraded"] += 1
            result.set_result(mine)
            return
        self.counters["escalated"] += 1
        try:
            asked = self.cloud.submit(text)
        except CloudUnavailable as exc:
            self._fail(exc.reason, mine, result)
            return
        timer = asyncio.get_running_loop().call_later(self._deadline, asked.cancel)
        asked.add_done_callback(lambda done: self._after_cloud(done, timer, mine, result))

    def _after_cloud(
        self,
        asked: asyncio.Future[Intent],
        timer: asyncio.TimerHandle,
        mine: Recognition,
        result: asyncio.Future[Recognition],
    ) -> None:
        timer.cancel()
        assert self.cloud is not None and self.health is not None
        if asked.cancelled():
            # By the deadline timer, or by the client closing at shutdown (not a miss).
            late = asyncio.get_running_loop().time() >= timer.when()
            reason = "timeout" if late else "cancelled"
        else:
            error = asked.exception()
            if error is None:
                self.counters["cloud_answered"] += 1
                self.health.record(True, "request")
                if not result.done():
                    result.set_result(
                        Recognition(asked.result(), self.cloud.name, self.cloud.version)
                    )
                return
            reason = error.reason if isinstance(error, CloudUnavailable) else "error"
        self._fail(reason, mine, result)

    def _fail(self, reason: str, mine: Recognition, result: asyncio.Future[Recognition]) -> None:
        self.counters[f"cloud_{reason}"] += 1
        if reason in MISS_REASONS:
            assert self.health is not None
            self.health.record(False, "request", reason)
        if result.done():
            return
        if self._safe_intent:
            safe = Intent(name=self._safe_intent, confidence=mine.intent.confidence)
            result.set_result(Recognition(safe, SAFE_ACTION, "config"))
        else:
            result.set_result(mine)
