"""The Judge interface: guard requests in, verdicts (or the error for that item) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..errors import ProGuardError
from ..inputs import GuardRequest
from ..taxonomy import Taxonomy
from ..verdict import Verdict

JudgeResult = Verdict | ProGuardError


class Judge(ABC):
    """Judges a batch at once; one result per request, in order.

    An item that could not be judged yields its ``ProGuardError`` instead of raising, so a
    batch never loses the verdicts of its other items.
    """

    name: str = "judge"
    #: whether the judge can look at images (the lite judge cannot)
    supports_images: bool = True
    #: False when its async path keeps nothing bound to an event loop between calls, so sync
    #: checks may run on the calling thread's own loop (see ``proguard_rails._portal``)
    loop_bound: bool = True

    @abstractmethod
    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        ...

    async def ajudge(self, request: GuardRequest, taxonomy: Taxonomy) -> Verdict:
        """One request; raises its error."""
        (result,) = await self.ajudge_batch([request], taxonomy)
        if isinstance(result, BaseException):
            raise result
        return result

    def identity(self) -> str:
        """Part of cache keys: two judges with the same identity give the same verdicts."""
        return self.name

    async def aclose(self) -> None:
        """Release backends and models."""


__all__ = ["Judge", "JudgeResult"]
