"""The serving contract shared by the exporter and the clients (no TensorFlow import).

`serving_default` takes one `[None]` DT_STRING tensor named `inputs` (encoded
JPEG/PNG/GIF/BMP bytes for image models, raw text for text models) and returns:

    probabilities        [None, C] float32  softmax over the classes
    class_id             [None]    int64    argmax
    class_name           [None]    string   the label of class_id (from assets/labels.txt)
    top_k_class_ids      [None, K] int64    the K most probable classes, best first
    top_k_class_names    [None, K] string
    top_k_probabilities  [None, K] float32

Image models also have `serving_pixels`, the same outputs from a `[None, H, W, 3]`
uint8 batch of decoded RGB images named `images`.
"""

DEFAULT_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"

INPUT_KEY = "inputs"
PIXELS_KEY = "images"

PROBABILITIES = "probabilities"
CLASS_ID = "class_id"
CLASS_NAME = "class_name"
TOP_K_CLASS_IDS = "top_k_class_ids"
TOP_K_CLASS_NAMES = "top_k_class_names"
TOP_K_PROBABILITIES = "top_k_probabilities"
OUTPUTS = (PROBABILITIES, CLASS_ID, CLASS_NAME, TOP_K_CLASS_IDS, TOP_K_CLASS_NAMES,
           TOP_K_PROBABILITIES)

DEFAULT_TOP_K = 5

# Files inside a version directory.
LABELS_ASSET = "labels.txt"
WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
