"""The paper's published numbers (Kornblith et al., 2021), shown beside measured ones.

Values are means over 8 ResNet-50 runs (Table 1, 3, 4) or 3 pretraining seeds (Table 2), in
percent except R² (class separation). Keys are this project's objective and dataset names.
"""

OBJECTIVES = ("softmax", "label_smoothing", "sigmoid", "extra_final_layer_l2", "dropout",
              "logit_penalty", "logit_normalization", "cosine_softmax", "squared_error")

DATASETS = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars196", "pets",
            "flowers")


def _by_objective(values):
  return dict(zip(OBJECTIVES, values))


# Table 1: ImageNet top-1 / top-5 and transfer with fixed features.
IMAGENET_TOP1 = _by_objective([77.0, 77.6, 77.9, 77.7, 77.5, 77.7, 77.8, 77.9, 77.2])
IMAGENET_TOP5 = _by_objective([93.40, 93.78, 93.50, 93.79, 93.62, 93.83, 93.71, 93.86, 92.79])

LINEAR_TRANSFER = {
    "food101": _by_objective([74.6, 72.7, 73.4, 70.6, 72.6, 68.1, 66.3, 62.0, 39.8]),
    "cifar10": _by_objective([92.4, 91.6, 91.7, 91.0, 91.4, 90.2, 90.5, 89.9, 82.2]),
    "cifar100": _by_objective([76.9, 75.2, 75.7, 73.7, 75.0, 72.3, 72.9, 71.3, 56.3]),
    "birdsnap": _by_objective([55.4, 53.6, 52.3, 51.5, 53.6, 48.1, 50.7, 45.4, 21.8]),
    "sun397": _by_objective([62.0, 61.6, 62.0, 60.1, 61.2, 59.0, 58.1, 55.0, 39.9]),
    "cars196": _by_objective([60.3, 54.8, 56.1, 50.3, 54.7, 48.3, 45.4, 36.7, 15.3]),
    "pets": _by_objective([92.0, 92.9, 92.5, 92.4, 92.6, 92.3, 92.0, 91.1, 84.7]),
    "flowers": _by_objective([94.0, 91.9, 92.9, 89.8, 92.1, 86.6, 82.9, 75.3, 46.7]),
}

KNN_TRANSFER = {
    "food101": _by_objective([60.9, 59.2, 58.5, 55.0, 58.4, 52.5, 50.9, 45.5, 27.7]),
    "cifar10": _by_objective([88.8, 88.3, 88.2, 87.7, 88.2, 86.5, 86.6, 86.0, 74.5]),
    "cifar100": _by_objective([67.4, 66.3, 66.6, 65.0, 66.4, 62.9, 63.1, 61.5, 44.3]),
    "birdsnap": _by_objective([38.4, 39.2, 34.4, 36.2, 38.1, 31.0, 35.1, 28.8, 13.8]),
    "sun397": _by_objective([53.0, 53.5, 52.8, 51.1, 52.4, 49.3, 45.8, 41.8, 28.6]),
    "cars196": _by_objective([28.9, 27.3, 26.7, 24.4, 27.8, 22.4, 24.1, 19.0, 9.1]),
    "pets": _by_objective([88.8, 91.5, 90.8, 90.9, 91.1, 90.8, 88.2, 87.0, 82.6]),
    "flowers": _by_objective([83.6, 80.3, 81.5, 75.6, 80.1, 68.1, 63.1, 52.7, 28.2]),
}

# Table 2: fine-tuning.
FINETUNE = {
    "food101": _by_objective([88.2, 88.3, 88.3, 88.1, 88.3, 88.4, 87.9, 88.3, 87.8]),
    "cifar10": _by_objective([96.9, 96.7, 96.9, 96.9, 96.7, 96.9, 96.9, 96.9, 96.9]),
    "cifar100": _by_objective([84.1, 84.0, 83.6, 84.4, 84.2, 83.9, 82.9, 83.2, 84.0]),
    "birdsnap": _by_objective([76.2, 76.3, 76.2, 75.9, 76.5, 76.4, 76.0, 75.6, 75.7]),
    "sun397": _by_objective([63.4, 63.6, 63.5, 64.5, 63.9, 63.3, 58.3, 56.9, 61.0]),
    "cars196": _by_objective([91.3, 91.2, 91.8, 91.5, 91.2, 91.2, 91.2, 91.3, 91.4]),
    "pets": _by_objective([93.1, 93.7, 93.7, 93.8, 93.9, 93.4, 92.7, 92.5, 93.0]),
    "flowers": _by_objective([96.7, 96.3, 96.3, 96.2, 96.3, 96.0, 95.9, 95.9, 95.2]),
}

# Table 3: class separation R² of the penultimate layer on the ImageNet training set.
CLASS_SEPARATION = _by_objective([0.349, 0.420, 0.427, 0.572, 0.461, 0.601, 0.517, 0.641, 0.845])

# Table 4: cosine softmax temperature sweep.
TEMPERATURES = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08)
TEMPERATURE_TOP1 = dict(zip(TEMPERATURES, [74.9, 77.0, 77.5, 77.6, 77.6, 77.5, 77.5, 77.6]))
TEMPERATURE_R2 = dict(zip(TEMPERATURES, [0.236, 0.358, 0.475, 0.562, 0.634, 0.693, 0.738,
                                         0.770]))
TEMPERATURE_LINEAR = {
    "food101": dict(zip(TEMPERATURES, [73.4, 72.1, 69.1, 66.0, 62.8, 60.3, 57.1, 53.7])),
    "cifar10": dict(zip(TEMPERATURES, [91.9, 91.8, 91.5, 90.7, 90.4, 89.3, 88.7, 87.7])),
    "cifar100": dict(zip(TEMPERATURES, [76.5, 76.2, 74.9, 73.8, 72.2, 69.8, 68.6, 66.5])),
    "birdsnap": dict(zip(TEMPERATURES, [57.2, 56.5, 53.7, 50.3, 47.6, 43.3, 39.6, 35.5])),
    "sun397": dict(zip(TEMPERATURES, [60.5, 60.4, 59.1, 57.4, 55.4, 53.8, 51.4, 49.4])),
    "cars196": dict(zip(TEMPERATURES, [62.9, 58.5, 51.8, 45.1, 38.6, 33.3, 29.1, 25.7])),
    "pets": dict(zip(TEMPERATURES, [91.7, 92.2, 92.3, 91.7, 91.0, 91.0, 90.2, 89.3])),
    "flowers": dict(zip(TEMPERATURES, [93.6, 91.2, 87.4, 82.2, 78.3, 72.7, 67.9, 63.2])),
}

# §3.4: Spearman correlation between class separation and mean linear transfer accuracy.
SPEARMAN_RHO = -0.93
SPEARMAN_P = 0.002

# §3.2, Figure 3: % non-zero activations of the penultimate layer.
SOFTMAX_PENULTIMATE_NONZERO = 92.8
