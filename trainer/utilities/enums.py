"""PL's module path `utilities.enums`: string enums that compare equal to their values."""

from enum import Enum


class LightningEnum(str, Enum):
    """A str enum whose members equal their values, case-insensitively (``GradClipAlgorithmType("norm")``)."""

    @classmethod
    def from_str(cls, value: str, source: str = "key") -> "LightningEnum":
        for member in cls:
            if (source in ("key", "any") and member.name.lower() == value.lower()) or (
                source in ("value", "any") and member.value.lower() == value.lower()
            ):
                return member
        raise ValueError(f"Invalid match: expected one of {[m.name for m in cls]}, but got {value}.")

    def __eq__(self, other: object) -> bool:
        other = other.value if isinstance(other, Enum) else other
        return isinstance(other, str) and self.value.lower() == other.lower()

    def __hash__(self) -> int:
        return hash(self.value.lower())


class GradClipAlgorithmType(LightningEnum):
    VALUE = "value"
    NORM = "norm"

    @staticmethod
    def supported_type(val: str) -> bool:
        return any(x.value == val for x in GradClipAlgorithmType)

    @staticmethod
    def supported_types() -> list[str]:
        return [x.value for x in GradClipAlgorithmType]


__all__ = ["GradClipAlgorithmType", "LightningEnum"]
