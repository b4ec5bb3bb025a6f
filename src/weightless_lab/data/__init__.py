"""Data sets: bundled MNIST (:mod:`.mnist`) and Fashion-MNIST (:mod:`.fashion_mnist`); a user's
own named splits from a ``.npz`` are in the library (:func:`weightless.training.splits.load_npz_splits`)."""
