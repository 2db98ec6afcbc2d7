"""Export to TensorFlow Serving, verification, models.config and predict clients.

    export.py        the serving module, signatures, op scan, size check, export_run
    layout.py        BASE/NAME/VERSION numbering and atomic publishing
    warmup.py        assets.extra/tf_serving_warmup_requests
    verify.py        fresh-process check against the Keras model, saved_model_cli
    model_config.py  models.config (model_config_list) for tensorflow_model_server
    client.py        local, REST and gRPC predict requests and their parsing
    signatures.py    the serving contract (input and output names)
"""
