"""The methods, one file each: ``<name with _ for ->.py`` defines the method's class as ``METHOD``.

The registry (:mod:`methods.registry`) finds every module here without importing it, and imports
one on first use; adding a method is adding a file here (and its section in docs/methods.md).
A method's class declares its ``name`` (the file's), ``kind``, ``needs_text``, ``source``, its loss
(and weights) and ``training_loop``; see :mod:`methods.base` (CLIP-guided), :mod:`methods.classical`
(training-free) and :mod:`methods.plugins.zero_dce` (a trained baseline with its own loop).
"""
