"""The paper's published figures and settings (Reagen et al., ICML 2018), in one place.

Tables 1-3 are transcribed from /work/shared/paper/weightless-icml2018.txt; the decode times
come from the paper's hardware paragraph (quoted in the reproducibility notes). Every output
cell of the reproduction shows our value next to the one here. The paper's "KB" are KiB
(LeNet-300-100 FC-0, 784*300*4 = 940,800 bytes, is printed as 919 KB), so ours are too.
"""

from __future__ import annotations

__all__ = [
    "KB",
    "LAYER_KEYS",
    "TABLE1",
    "TABLE2",
    "TABLE3",
    "DECODE_SECONDS",
    "DECODE_MACHINE",
    "VGG_LAYERS",
    "HEADLINE",
    "WHOLE_MODEL_PUBLISHED",
]

#: Bytes per "KB" in the paper's tables (919 KB for the 940,800-byte LeNet-300-100 FC-0).
KB = 1024

#: (model, pruning) -> {tensor name: paper layer name}.
LAYER_KEYS: dict[tuple[str, str], dict[str, str]] = {
    ("lenet300", "magnitude"): {"fc1.weight": "FC-0", "fc2.weight": "FC-1"},
    ("lenet300", "dns"): {"fc1.weight": "FC-0", "fc2.weight": "FC-1"},
    ("lenet5", "magnitude"): {"conv2.weight": "CNN-1", "fc1.weight": "FC-0"},
    ("lenet5", "dns"): {"conv2.weight": "CNN-1", "fc1.weight": "FC-0"},
}

#: Table 1: (model, pruning) -> {"error": %, "layers": {paper layer: {size_kb, nonzero_percent, k, t}}}.
TABLE1: dict[tuple[str, str], dict] = {
    ("lenet300", "magnitude"): {"error": 1.76, "layers": {
        "FC-0": {"size_kb": 919, "nonzero_percent": 5.0, "k": 9, "t": 8},
        "FC-1": {"size_kb": 117, "nonzero_percent": 5.0, "k": 9, "t": 9}}},
    ("lenet300", "dns"): {"error": 2.03, "layers": {
        "FC-0": {"size_kb": 919, "nonzero_percent": 1.8, "k": 9, "t": 9},
        "FC-1": {"size_kb": 117, "nonzero_percent": 1.8, "k": 10, "t": 8}}},
    ("lenet5", "magnitude"): {"error": 0.98, "layers": {
        "CNN-1": {"size_kb": 36, "nonzero_percent": 7.0, "k": 9, "t": 8},
        "FC-0": {"size_kb": 2304, "nonzero_percent": 5.5, "k": 9, "t": 7}}},
    ("lenet5", "dns"): {"error": 0.96, "layers": {
        "CNN-1": {"size_kb": 98, "nonzero_percent": 3.1, "k": 10, "t": 8},
        "FC-0": {"size_kb": 1564, "nonzero_percent": 0.73, "k": 10, "t": 8}}},
    ("vgg16", "magnitude"): {"error": 35.0, "layers": {
        "FC-0": {"size_kb": 392 * 1024, "nonzero_percent": 2.99, "k": 4, "t": 6},
        "FC-1": {"size_kb": 64 * 1024, "nonzero_percent": 4.16, "k": 4, "t": 8}}},
}

#: Table 2 (before entropy coding): {paper layer: (CSR factor, CSR KB, Weightless factor, Weightless KB, improvement)}.
TABLE2: dict[tuple[str, str], dict[str, tuple[float, float, float, float, float]]] = {
    ("lenet300", "magnitude"): {"FC-0": (40.1, 22.9, 40.6, 20.1, 1.01), "FC-1": (46.9, 2.50, 56.1, 2.09, 1.20)},
    ("lenet300", "dns"): {"FC-0": (112, 8.22, 152, 6.04, 1.36), "FC-1": (99.0, 1.18, 174, 0.67, 1.75)},
    ("lenet5", "magnitude"): {"CNN-1": (40.7, 0.89, 46.2, 0.78, 1.14), "FC-0": (46.6, 46.6, 66.6, 34.6, 1.43)},
    ("lenet5", "dns"): {"CNN-1": (80.6, 1.21, 97.8, 1.00, 1.21), "FC-0": (224, 6.99, 445, 3.52, 1.99)},
    ("vgg16", "magnitude"): {"FC-0": (81.8, 4790, 142, 2750, 1.74), "FC-1": (71.2, 900, 74.6, 860, 1.05)},
}

#: Table 3 (after entropy coding): {paper layer: (CSR+Huffman factor, KB, Weightless factor, KB, improvement)}.
TABLE3: dict[tuple[str, str], dict[str, tuple[float, float, float, float, float]]] = {
    ("lenet300", "magnitude"): {"FC-0": (59.1, 15.6, 60.1, 15.3, 1.02), "FC-1": (56.0, 2.09, 64.3, 1.82, 1.15)},
    ("lenet300", "dns"): {"FC-0": (153, 5.98, 174, 5.27, 1.13), "FC-1": (129, 0.91, 195, 0.60, 1.51)},
    ("lenet5", "magnitude"): {"CNN-1": (42.8, 0.84, 51.6, 0.70, 1.21), "FC-0": (59.1, 39.0, 74.2, 31.1, 1.25)},
    ("lenet5", "dns"): {"CNN-1": (89.5, 1.09, 114.4, 0.86, 1.28), "FC-0": (333, 4.70, 496, 3.16, 1.49)},
    ("vgg16", "magnitude"): {"FC-0": (119, 3280, 157, 2500, 1.31), "FC-1": (88.4, 720, 85.8, 740, 0.97)},
}

#: Seconds to reconstruct (decode) the largest layer of each model on an Intel i7-6700K
#: (and on an ARM A53), as stated in the paper.
DECODE_SECONDS: dict[str, dict[str, float]] = {
    "lenet300": {"i7-6700K": 0.52, "ARM A53": 7.1},
    "lenet5": {"i7-6700K": 1.3, "ARM A53": 18.0},
    "vgg16": {"i7-6700K": 22.8, "ARM A53": 296.0},
}
DECODE_MACHINE = "Intel i7-6700K"

#: VGG-16 layers of Table 1: name -> (shape, nonzero fraction, k, t).
VGG_LAYERS: dict[str, tuple[tuple[int, int], float, int, int]] = {
    "FC-0": ((25088, 4096), 0.0299, 4, 6),
    "FC-1": ((4096, 4096), 0.0416, 4, 8),
}

#: The abstract's headline claims.
HEADLINE = {
    "max_compression": 496.0,  # LeNet5 DNS FC-0, after entropy coding
    "max_improvement_entropy": 1.51,  # Table 3, LeNet-300-100 DNS FC-1
    "max_improvement_raw": 1.99,  # Table 2, LeNet5 DNS FC-0
}

#: Published whole-model compression factors (float32 model / compressed file), as quoted in
#: issue 12: Deep Compression (Han et al. 2016), soft weight-sharing (Ullrich et al. 2017),
#: Bayesian Compression (Louizos et al. 2017), MIRACLE (Havasi et al. 2019; 1.52 KB at 0.96%).
WHOLE_MODEL_PUBLISHED: dict[str, dict[str, str]] = {
    "lenet5": {"Deep Compression": "39x", "soft weight-sharing": "162x", "Bayesian Compression": "361-419x",
               "MIRACLE": "~1110x"},
    "lenet300": {"Deep Compression": "40x", "soft weight-sharing": "64x"},
}
