"""Downloads without network fail within seconds, with one message saying what to pass.

No test reaches the network: a refused connection is either real (127.0.0.1 on a
port nothing listens on) or raised by a stand-in for the connect call.
"""

import socket
import time
import urllib.error

import keras
import pytest
import requests

from tfxfer.config import DataConfig
from tfxfer.data import tfds_source
from tfxfer.image.backbones import build_backbone
from tfxfer.runtime.offline import DownloadError, fetching, is_network_error
from tfxfer.text.encoders import resolve_encoder


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _refused(*args, **kwargs):
    raise ConnectionRefusedError(111, "Connection refused")


def _chained(outer_type):
    try:
        _refused()
    except ConnectionRefusedError as err:
        try:
            raise outer_type("download failed") from err
        except outer_type as outer:
            return outer


@pytest.mark.parametrize("err", [
    ConnectionRefusedError(111, "Connection refused"),
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
    socket.gaierror(-3, "Temporary failure in name resolution"),
    _chained(requests.exceptions.ConnectionError),
    _chained(Exception),  # what keras.utils.get_file raises, from the URLError
], ids=["refused", "urllib", "dns", "requests", "keras-get-file"])
def test_network_errors_become_one_download_error(err):
    assert is_network_error(err)
    with pytest.raises(DownloadError, match=r"Could not download X .* pass --y Z\.$"):
        with fetching("X", "--y Z"):
            raise err


def test_other_errors_pass_through():
    with pytest.raises(KeyError):
        with fetching("X", "--y Z"):
            raise KeyError("not a network error")


def test_tfds_fails_fast_before_tfds_retries(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def load(*args, download=True, **kwargs):  # as tfds.load on a dataset not prepared
        if not download:
            raise AssertionError("Dataset tf_flowers: could not find data in ...")
        pytest.fail("tfds.load was asked to download")

    monkeypatch.setattr(socket, "create_connection", _refused)
    monkeypatch.setattr(tfds, "load", load)
    start = time.monotonic()
    with pytest.raises(DownloadError) as error:
        tfds_source.load_tfds_splits(
            DataConfig(source="tfds:tf_flowers", tfds_data_dir=str(tmp_path)), 32)
    assert time.monotonic() - start < 30
    assert "TFDS dataset 'tf_flowers'" in str(error.value)
    assert "ConnectionRefusedError" in str(error.value)  # the network error, not TFDS's own
    assert "--data FOLDER" in str(error.value) and "\n" not in str(error.value)


def test_tfds_load_refused_is_one_message(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def load(*args, download=True, **kwargs):
        if not download:
            raise AssertionError("Dataset tf_flowers: could not find data in ...")
        raise _chained(requests.exceptions.ConnectionError)

    monkeypatch.setattr(tfds_source, "_check_download", lambda name, data: None)
    monkeypatch.setattr(tfds, "load", load)
    with pytest.raises(DownloadError, match="TFDS dataset 'tf_flowers'.*--data FOLDER"):
        tfds_source.load_tfds_splits(DataConfig(source="tfds:tf_flowers"), 32)


def test_imagenet_weights_refused_names_weights_path(tmp_path, monkeypatch, closed_port):
    from keras.src.applications import mobilenet
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # no cached weights
    monkeypatch.setattr(mobilenet, "BASE_WEIGHT_PATH", f"http://127.0.0.1:{closed_port}/")
    start = time.monotonic()
    with pytest.raises(DownloadError) as error:
        build_backbone("mobilenet", weights="imagenet", image_size=128, alpha=0.25)
    assert time.monotonic() - start < 30
    assert "ImageNet weights of backbone 'mobilenet'" in str(error.value)
    assert "Connection refused" in str(error.value)
    assert "--weights PATH" in str(error.value)
    keras.backend.clear_session()


def test_tf_hub_handle_refused_names_encoder_dir(tmp_path, monkeypatch, closed_port):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    handle = f"http://127.0.0.1:{closed_port}/google/nnlm/2"
    with pytest.raises(DownloadError) as error:
        resolve_encoder(handle, cache_dir=tmp_path)
    assert f"TF-Hub module {handle}" in str(error.value)
    assert "--encoder DIR" in str(error.value)
