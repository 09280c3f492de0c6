import numpy as np
import pytest

from crossgen import CheckpointError, InvalidPromptError, TextEncoder, UnknownWordsError

from helpers import tiny_encoder


def test_train_save_load_round_trip(tmp_path):
    enc = tiny_encoder()
    enc.save(tmp_path / "w2v.bin")
    enc2 = TextEncoder.load(tmp_path / "w2v.bin")
    assert enc2.dim == 16 and set(enc2.wv.key_to_index) == set(enc.wv.key_to_index)
    np.testing.assert_allclose(enc.wv["apple"], enc2.wv["apple"])
    np.testing.assert_allclose(enc.encode("red apple").vector, enc2.encode("red apple").vector)


def test_encode_unit_vector_known_unknown():
    enc = tiny_encoder()
    e = enc.encode("A red APPLE, please!")
    assert e.known == ["red", "apple"] and e.unknown == ["please"]
    assert abs(np.linalg.norm(e.vector) - 1) < 1e-5
    # order and function words do not matter
    np.testing.assert_allclose(e.vector, enc.encode("the apple red").vector, atol=1e-6)


def test_unknown_words_reported_with_suggestions():
    enc = tiny_encoder()
    with pytest.raises(UnknownWordsError) as err:
        enc.encode("apples doggo")
    assert err.value.unknown == ["apples", "doggo"]
    assert "apple" in err.value.suggestions["apples"]
    assert "apple" in str(err.value)
    with pytest.raises(InvalidPromptError):
        enc.encode("   ")


def test_encode_batch_zero_for_unknown():
    v = tiny_encoder().encode_batch(["red apple", "qqqq"])
    assert v.shape == (2, 16) and np.abs(v[1]).sum() == 0 and np.abs(v[0]).sum() > 0


def test_load_missing_or_corrupt(tmp_path):
    with pytest.raises(CheckpointError, match="Missing"):
        TextEncoder.load(tmp_path / "nope.bin")
    (tmp_path / "bad.bin").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="Corrupt"):
        TextEncoder.load(tmp_path / "bad.bin")


def test_prune_keeps_frequent_and_listed_words():
    enc = tiny_encoder()
    rare = enc.wv.index_to_key[-1]
    small = enc.prune(keep=[rare], max_words=3)
    assert len(small.wv) == 4 and rare in small and enc.wv.index_to_key[0] in small
    np.testing.assert_allclose(small.wv[rare], enc.wv[rare])
