"""TensorFlow Serving: the contract, export, models.config, clients and `tfxfer serve`.

    contract.py      TF Serving facts and tfxfer's signature names (no TensorFlow import)
    policy.py        VersionPolicy: which versions are served; the policy CLI flags
    export/          SavedModel export: introspection, serving module, checks, publishing
    model_config.py  models.config (model_config_list) for tensorflow_model_server
    client.py        local, REST and gRPC predict requests and their parsing
    commands.py      `tfxfer export`, `tfxfer predict`, `tfxfer serving-config`
    server/          `tfxfer serve`: TF Serving's REST and gRPC APIs on any SavedModel
"""
