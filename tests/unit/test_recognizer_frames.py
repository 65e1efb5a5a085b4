"""Frames between the gateway and its recogniser worker: any split decodes, bad frames fail;
the channel fails a batch at once when the worker is gone."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.recognizer.frames import HEADER, MAX_FRAME, FrameDecoder, FrameError, encode_frame
from gateway.recognizer.remote import WorkerFailed, _Channel

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(values, min_size=1, max_size=5), st.data())
def test_frames_decode_whatever_the_split(frames: list[object], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(frame) for frame in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    decoded: list[object] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += list(decoder.feed(stream[start:end]))
    assert decoded == frames


def test_a_partial_frame_waits_for_the_rest() -> None:
    frame = encode_frame(["turn off the kitchen lights"])
    decoder = FrameDecoder()
    assert list(decoder.feed(frame[:-1])) == []
    assert list(decoder.feed(frame[-1:])) == [["turn off the kitchen lights"]]


def test_an_announced_oversize_frame_is_refused_before_it_arrives() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        list(FrameDecoder().feed(HEADER.pack(MAX_FRAME + 1)))


def test_an_undecodable_body_is_a_frame_error() -> None:
    body = b"\x1f"  # CBOR: reserved additional information
    with pytest.raises(FrameError, match="undecodable"):
        list(FrameDecoder().feed(HEADER.pack(len(body)) + body))
    assert cbor2.loads(encode_frame({"ok": []})[HEADER.size:]) == {"ok": []}


async def test_a_batch_sent_after_the_worker_exited_fails_at_once() -> None:
    """Between the worker's exit and its supervisor noticing, a batch must not wait forever."""
    channel = _Channel()
    channel.exited.set_result(-9)
    answer = channel.send(["turn off the kitchen lights"])
    assert answer.done() and isinstance(answer.exception(), WorkerFailed)
    assert not channel.waiting
