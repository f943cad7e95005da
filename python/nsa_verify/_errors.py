"""The package's exceptions. The extension raises them for the C++ library's errors, so this module
must not import nsa_verify._core."""


class ConfigError(ValueError):
    """A config breaks a rule (docs/config-format.md): `field` names the config field (or
    "<json>" for the text itself), `value` the offending value as text, `rule` the rule."""

    def __init__(self, message, field="", value="", rule=""):
        super().__init__(message)
        self.field = field
        self.value = value
        self.rule = rule


class GoldenError(ValueError):
    """A golden or candidate file cannot be used: not HDF5, damaged, another schema version, a
    dataset or attribute missing or of the wrong shape or type. The message names the file, the
    case and the dataset."""


class CudaError(RuntimeError):
    """The CUDA forward cannot run: this build has no kernels, there is no device, or a CUDA call
    failed (the message names the call or kernel and the config)."""
