"""PL's module path `accelerators`: not offered as classes; pass ``Trainer(accelerator="cpu"|"gpu"|"mps")``."""

from .._not_offered import not_offered

__getattr__ = not_offered(
    __name__,
    {
        name: "pass the accelerator by name: Trainer(accelerator='cpu', 'gpu', 'cuda', 'mps' or 'auto')"
        for name in ("Accelerator", "CPUAccelerator", "CUDAAccelerator", "MPSAccelerator", "XLAAccelerator")
    },
)
