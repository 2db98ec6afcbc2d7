"""Choosing for the user: strategy, feature layer and learning rate ("auto").

    probes.py     linear probes by depth, BatchNorm-statistics shift (similarity signals)
    advisor.py    data size x similarity -> strategy, cut and unfreeze depth (advice.json)
    lr_finder.py  exponential learning-rate sweep, suggestion, plot
    resolve.py    resolves strategy/feature_layer/learning_rate "auto" before training
    commands.py   `tfxfer advise` and `tfxfer lr-find`
"""
