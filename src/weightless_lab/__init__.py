"""The lab around the ``weightless`` library: the MNIST / LeNet application (:mod:`.apps`,
:mod:`.models`, :mod:`.data`), the paper's figures (:mod:`.paper`) and their reproduction
(:mod:`.experiments`), and the ``weightless`` command line (:mod:`.cli`).

It uses the library (``weightless``); the library never imports it.
"""
