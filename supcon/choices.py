"""The names a user chooses among, and the defaults that flags share with the library.

TensorFlow-free on purpose: `train.py` and `eval.py` check their flags against these before
TensorFlow is imported, so a mistyped flag is answered at once instead of after the seconds that
TensorFlow takes to start. The library modules that implement each choice import its tuple from
here, so every list is written once.
"""

METHODS = ("supcon", "simclr", "genscl", "ce")  # supcon.training.config
AUGMENTATIONS = ("simaugment", "autoaugment", "randaugment", "stacked_randaugment", "crop_flip",
                 "none")
OPTIMIZERS = ("lars", "sgd", "nesterov", "rmsprop", "adam", "adamw", "lamb")
SCHEDULES = ("cosine", "exponential", "piecewise", "constant")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
AUGMENT_ON = ("host", "device")  # supcon.data.batch_augment
# The policies whose stage after the crop can run on the accelerator (--augment_on=device).
DEVICE_AUGMENTATIONS = ("simaugment", "crop_flip")
JIT_COMPILE = ("auto", "true", "false")  # supcon.training.run.resolve_jit_compile

# eval.py.
CORRUPTION_SOURCES = ("auto", "tfds", "generate")
KNN_DEFAULT_K = 200  # Wu et al. 2018 §4.1.
KNN_DEFAULT_TEMPERATURE = 0.07  # Wu et al. 2018 §3.1, tau = 0.07.
