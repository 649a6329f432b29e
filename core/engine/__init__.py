"""The eager engine: tensors, the one dispatch point, autograd, the op registry
and its definitions, and what is built on them (functional, nn, optim)."""
