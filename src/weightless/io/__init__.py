"""Tensors <-> container records <-> ``.wl`` files (numpy only; torch is imported lazily).

- :mod:`.files`: ``save``, ``load``, ``load_arrays``, ``inspect``, ``to_bytes``.
- :mod:`.records`: dense and Bloomier-filter records; :mod:`.clustered`: lossless records of
  clustered tensors; :mod:`.bfloat16`: bfloat16 words on numpy.
- :mod:`.limits`: resource limits checked before decoding untrusted files.
- :mod:`.torch_decode`: decoding straight into ``torch.Tensor`` on any device.
"""
