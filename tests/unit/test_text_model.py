"""The packaged text-intent model with the real onnxruntime: integrity, intents, slots, eval."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gateway.recognizer import LocalRecognizer
from gateway.recognizer.evaluate import (
    EVAL_KEYS,
    Example,
    evaluate,
    split_examples,
)
from gateway.recognizer.slots import SlotExtractor
from gateway.recognizer.text_model import (
    MANIFEST_NAME,
    MODEL_NAME,
    OTHER,
    Featurizer,
    ModelIntegrityError,
    TextIntentModel,
    normalize,
)
from schemas import Intent
from schemas.config import RecognizerConfig

MODELS = Path(__file__).resolve().parents[2] / "gateway" / "models"


@pytest.fixture(scope="module")
def model() -> TextIntentModel:
    """The packaged model, loaded once for the module."""
    return TextIntentModel.load()


def test_packaged_model_loads_and_its_sha256_matches_the_manifest(model: TextIntentModel) -> None:
    """The default model is the packaged file, whose sha256 and size match its manifest."""
    manifest = json.loads((MODELS / MANIFEST_NAME).read_text(encoding="utf-8"))
    data = (MODELS / MODEL_NAME).read_bytes()
    assert model.sha256 == manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert model.size_bytes == manifest["size_bytes"] == len(data) <= 5 * 1024 * 1024
    assert model.version == manifest["version"] and model.labels[-1] == OTHER
    assert len(model.labels) == 10 and (MODELS / "ATTRIBUTION.md").is_file()
    announced = manifest["features"].get("static_words", {}).get("count", 0)
    assert len(model.featurizer.vocab) == announced


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("turn off the kitchen lights", "iot_hue_lightoff"),
        ("switch the lights on", "iot_hue_lighton"),
        ("dim the lights in the bedroom", "iot_hue_lightdim"),
        ("make the lights brighter", "iot_hue_lightup"),
        ("change the lights to blue", "iot_hue_lightchange"),
        ("make me a cup of coffee", "iot_coffee"),
        ("start the vacuum cleaner", "iot_cleaning"),
        ("turn on the smart plug", "iot_wemo_on"),
        ("switch off the wemo socket", "iot_wemo_off"),
    ],
)
def test_obvious_commands_map_to_their_intent(
    model: TextIntentModel, text: str, intent: str
) -> None:
    """A plain smart-home command is recognised as its intent."""
    (found,) = model.predict([text])
    assert found.name == intent, found
    assert found.confidence >= model.threshold


@pytest.mark.parametrize(
    "text",
    [
        "what is the weather like tomorrow",
        "play some jazz music",
        "tell me a joke",
        "set an alarm for seven am",
        "how many ounces are in a pound",
        "",
    ],
)
def test_out_of_domain_text_is_other(model: TextIntentModel, text: str) -> None:
    """Out-of-domain text (and empty text) is rejected as `other`, without slots."""
    (found,) = model.predict([text])
    assert found.name == OTHER and found.slots == {}


def test_slots_are_extracted_from_known_phrases(model: TextIntentModel) -> None:
    """Rooms and colours of a command come back as slots with their original spelling."""
    (off,) = model.predict(["turn off the kitchen lights"])
    assert off.slots == {"house_place": "kitchen"}
    (change,) = model.predict(["Change the Living Room lights to blue"])
    assert change.slots == {"house_place": "Living Room", "color_type": "blue"}


def test_slot_extractor_prefers_longest_match_on_word_boundaries() -> None:
    """The gazetteer matches whole words only and prefers the longest value."""
    extractor = SlotExtractor({"room": "house_place", "living room": "house_place"})
    spans = extractor.extract("the living room and the bathroom")
    assert [(s.value, s.start, s.end) for s in spans] == [("living room", 4, 15)]


def test_batch_prediction_equals_single_predictions(model: TextIntentModel) -> None:
    """Predicting a batch gives the same intents as predicting each text alone."""
    texts = ["turn off the lights", "what time is it", "brew a coffee", "dim the hall lights"]
    batch = model.predict(texts)
    assert batch == [model.predict([text])[0] for text in texts]
    assert all(isinstance(intent, Intent) for intent in batch)
    assert model.predict([]) == []


def test_threshold_turns_unsure_intents_into_other() -> None:
    """The decision rule: other wins, or the best intent is below the threshold -> other."""
    loaded = TextIntentModel.load(threshold=0.5)
    probs = np.full((3, 10), 0.0, dtype=np.float32)
    probs[0, 1], probs[0, 9] = 0.45, 0.40  # iot_coffee best but unsure
    probs[1, 1], probs[1, 9] = 0.80, 0.20  # iot_coffee, sure
    probs[2, 1], probs[2, 9] = 0.30, 0.70  # other wins
    decided = loaded.decide(probs)
    assert [name for name, _ in decided] == [OTHER, "iot_coffee", OTHER]
    assert decided[0][1] == pytest.approx(0.55) and decided[2][1] == pytest.approx(0.70)
    assert TextIntentModel.load(threshold=0.2).threshold == 0.2


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    """A model file that differs from its manifest's sha256 is not loaded."""
    copy = tmp_path / "models"
    shutil.copytree(MODELS, copy)
    data = bytearray((copy / MODEL_NAME).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / MODEL_NAME).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        TextIntentModel.load(copy)
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(ModelIntegrityError, match="manifest"):
        TextIntentModel.load(copy)


def test_featurizer_is_deterministic_and_pads_with_zero_weight() -> None:
    """Hashing is stable, rows are padded with weight 0, each group has unit L2 norm."""
    featurize = Featurizer(bits=16, char_ngrams=(2, 3, 4, 5))
    ids, weights = featurize(["Turn OFF the lights!", "hi"])
    again, _ = featurize(["turn off the lights", "hi"])
    assert np.array_equal(ids, again) and ids.dtype == np.int64 and weights.dtype == np.float32
    assert ids.shape == weights.shape and ids.max() < 2**16
    assert (weights[1] == 0).sum() > 0 and np.allclose((weights[1] ** 2).sum(), 2.0)
    assert normalize("  I'd like   the LIGHTS, on!") == "id like the lights on"


def test_featurizer_vocab_words_add_mean_weighted_rows_after_the_buckets() -> None:
    """Known vocab words add rows 2**bits + index weighted 1/count; hashed features unchanged."""
    plain = Featurizer(bits=10, char_ngrams=(2, 3))
    static = Featurizer(bits=10, char_ngrams=(2, 3), vocab=("lights", "kitchen", "coffee"))
    texts = ["Turn off the KITCHEN lights", "hello there"]
    ids, weights = static(texts)
    plain_ids, plain_weights = plain(texts)
    for row in range(len(texts)):
        hashed = (ids[row] < 2**10) & (weights[row] > 0)
        used = plain_weights[row] > 0
        found = np.stack([ids[row][hashed], weights[row][hashed]])
        expected = np.stack([plain_ids[row][used], plain_weights[row][used]])
        assert np.array_equal(found[:, np.lexsort(found)], expected[:, np.lexsort(expected)])
    known = ids[0] >= 2**10
    assert sorted(ids[0][known].tolist()) == [2**10 + 0, 2**10 + 1]
    assert np.allclose(weights[0][known], 0.5) and not (ids[1] >= 2**10).any()
    assert static.rows == 2**10 + 3 and plain.rows == plain.buckets == 2**10


@pytest.mark.parametrize("char_ngrams", [(2, 3, 4, 5), (3, 1, 7)])
def test_featurizer_small_batches_equal_the_vectorised_path(char_ngrams: tuple[int, ...]) -> None:
    """Up to four texts take a per-row path whose ids and weights equal the batched ones."""
    featurize = Featurizer(bits=12, char_ngrams=char_ngrams, vocab=("lights", "on", "kitchen"))
    texts = ["Turn the kitchen lights ON!", "", "x", "lights lights on", "what's the time"]
    batch_ids, batch_weights = featurize([*texts, *texts])  # ten texts: vectorised
    for row, text in enumerate(texts):
        ids, weights = featurize([text])
        width = ids.shape[1]
        assert np.array_equal(ids[0], batch_ids[row, :width])
        assert np.array_equal(weights[0], batch_weights[row, :width])
        assert not batch_weights[row, width:].any()


def test_featurizer_refuses_a_vocab_that_the_manifest_does_not_announce() -> None:
    """A manifest whose static word count differs from the model's vocab is an error."""
    spec = {"bits": 16, "char_ngrams": [2, 3], "static_words": {"count": 2}}
    assert Featurizer.from_manifest(spec, ["lights", "coffee"]).rows == 2**16 + 2
    with pytest.raises(ValueError, match="vocab"):
        Featurizer.from_manifest(spec, ["lights"])
    with pytest.raises(ValueError, match="distinct"):
        Featurizer(vocab=("lights", "lights"))


def test_evaluate_reports_exactly_the_eval_keys(model: TextIntentModel) -> None:
    """The evaluation report has exactly the documented keys, with sane values."""
    examples = [
        Example("turn off the kitchen lights", "iot_hue_lightoff"),
        Example("make me a coffee", "iot_coffee"),
        Example("what is the weather", OTHER),
    ]
    report = evaluate(model, examples, latency_samples=10)
    assert tuple(report) == EVAL_KEYS
    assert report["iot_accuracy"] == 1.0 and report["false_accept_rate"] == 0.0
    assert report["n"] == 3 and report["model_version"] == model.version


def test_validation_split_is_reproducible_and_disjoint() -> None:
    """The split is the same on every call, stratified, and disjoint from training rows."""
    rows = [Example(f"text {i}", "iot_coffee" if i % 5 else OTHER) for i in range(100)]
    train, validation = split_examples(rows)
    again_train, again_validation = split_examples(list(reversed(rows)))
    assert validation == again_validation and train == again_train
    assert not {e.text for e in train} & {e.text for e in validation}
    assert len(validation) == 20 and sum(e.label == OTHER for e in validation) == 4


async def test_local_recognizer_batches_real_model_calls() -> None:
    """LocalRecognizer resolves submitted texts to Intents through the micro-batcher."""
    recognizer = LocalRecognizer(TextIntentModel.load(), RecognizerConfig(batch_window_ms=5.0))
    async with asyncio.TaskGroup() as group:
        service = group.create_task(recognizer.run())
        intents = await asyncio.gather(
            recognizer.submit("turn off the kitchen lights"), recognizer.submit("tell me a joke")
        )
        service.cancel()
    assert [intent.name for intent in intents] == ["iot_hue_lightoff", OTHER]
    assert recognizer.batcher.stats.batches == 1 and recognizer.name == "local"
