"""Images: pretrained backbones, small from-scratch CNNs, in-model layers, the image model.

    backbones.py    the registry of keras.applications backbones (BackboneSpec)
    small_cnns.py   small CNNs trained from scratch (the DANN paper's MNIST CNN)
    layers.py       layers saved inside models: backbone preprocessing, feature
                    standardisation, RandomAffine augmentation
    model.py        the image classifier factory and its stable layer names
"""
