"""The offline all-MiniLM-L6-v2 through tfxfer matches an independent numpy BERT.

Needs $TFXFER_ASSETS (text/all-MiniLM-L6-v2). The reference is computed in this test by
`numpy_bert.NumpyBert` straight from `model.safetensors` and `tokenizer.json`, with no
keras-hub code, so a conversion or pooling error in tfxfer's encoder cannot hide.
"""

import numpy as np
import pytest
import tensorflow as tf
from numpy_bert import NumpyBert

from tfxfer.text import encoders
from tfxfer.text.transformer import TransformerTextEncoder

SENTENCES = [
    "A gripping, beautifully acted film.",
    "The plot was dull and the ending made no sense at all!",
    "I've seen worse; 4/10 — the soundtrack (by Café Tacvba) is great.",
]
SEQUENCE_LENGTH = 64  # longer than every sentence: the padding must not count


@pytest.mark.assets
def test_sentence_embeddings_match_an_independent_numpy_bert(assets):
    minilm_dir = assets / encoders.MINILM_ASSET
    reference = NumpyBert(minilm_dir)
    expected = np.stack([reference.sentence_embedding(s, SEQUENCE_LENGTH) for s in SENTENCES])
    assert encoders.transformer_preset("minilm") == str(minilm_dir)
    encoder = TransformerTextEncoder(str(minilm_dir), sequence_length=SEQUENCE_LENGTH)
    assert (encoder.pooling, encoder.exact_gelu, encoder.output_dim) == ("mean", True, 384)
    ids = encoder.tokenize(tf.constant(SENTENCES))["token_ids"].numpy()
    for row, sentence in zip(ids, SENTENCES):
        expected_ids = reference.token_ids(sentence, SEQUENCE_LENGTH)
        np.testing.assert_array_equal(row[: len(expected_ids)], expected_ids)
        assert not row[len(expected_ids):].any()  # then padding
    vectors = encoder(tf.constant(SENTENCES)).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-4, rtol=0)
