"""Data sets: bundled MNIST (:mod:`.mnist`), Fashion-MNIST (:mod:`.fashion_mnist`), and a
user's own named splits from a ``.npz`` (:func:`.splits.load_npz_splits`)."""
