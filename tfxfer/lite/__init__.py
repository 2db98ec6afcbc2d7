"""On-device export: LiteRT (TFLite) models with quantization, verified, with labels.

    quantization.py    the modes (none, float16, dynamic, int8) and their accuracy bounds
    convert.py         the on-device graph and the converter; unsupported ops named
    representative.py  calibration images from the run's training split
    runtime.py         the LiteRT interpreter behind uint8-in, probabilities-out
    verify.py          the converted model against the Keras model on the test split
    metadata.py        labels.txt and the input/output description
    publish.py         atomic rename of the export directory
    export.py          export_tflite / export_run_tflite
    predict.py         `tfxfer predict --tflite`
    commands.py        the CLI flags of `tfxfer export --format tflite` and predict
"""
