import CLoomKernels

/// Pure functions over buffers: the numeric core under the model runtime.
public enum Kernels {}
