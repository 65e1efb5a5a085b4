"""The recogniser's worker process: the text model outside the gateway's interpreter.

Featurising, slot extraction and result building are Python and hold the GIL; in a thread of
the gateway they compete with the event loop for it, and every hand-off back and forth waits
for the other thread's switch interval. In a child process they run on the other core.

``python -m gateway.recognizer.worker --model PATH [--threshold T] [--threads N]`` talks over
stdin/stdout in length-prefixed CBOR frames (`gateway.recognizer.frames`):

- child -> parent, once loaded: ``{"ready": {"version", "sha256", "threshold"}}``
- parent -> child: a list of texts; child -> parent, in order: ``{"ok": [[name, confidence,
  slots], ...]}`` or ``{"error": "..."}`` (the batch failed, the worker goes on)

The child exits when its stdin closes (the parent stopped or died). Its stdout carries frames
only: anything else printed goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import cbor2

from gateway.recognizer.frames import HEADER, MAX_FRAME, FrameError, encode_frame

__all__ = ["main"]


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) < size:
        return None  # EOF: the parent is gone
    return data


def _requests(stream: BinaryIO) -> Iterator[Any]:
    while True:
        header = _read_exactly(stream, HEADER.size)
        if header is None:
            return
        (size,) = HEADER.unpack(header)
        if size > MAX_FRAME:
            raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME}")
        body = _read_exactly(stream, size)
        if body is None:
            return
        yield cbor2.loads(body)


def _answer(model: Any, texts: object) -> dict[str, Any]:
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        return {"error": "a request is a list of texts"}
    try:
        fields = model.predict_fields(texts)
    except Exception as exc:  # one bad batch must not take the worker down
        return {"error": repr(exc)}
    return {"ok": fields}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.recognizer.worker")
    parser.add_argument("--model", default=None, help="model path; default: the packaged one")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # Frames own fd 1; a stray print (a library's warning) goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # Imported only now: onnxruntime must not write to the frame channel while it loads.
    from gateway.recognizer.text_model import TextIntentModel  # noqa: PLC0415

    model = TextIntentModel.load(args.model, threshold=args.threshold,
                                 intra_op_threads=args.threads)
    ready = {"version": model.version, "sha256": model.sha256, "threshold": model.threshold}
    out.write(encode_frame({"ready": ready}))
    out.flush()
    for texts in _requests(sys.stdin.buffer):
        out.write(encode_frame(_answer(model, texts)))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
