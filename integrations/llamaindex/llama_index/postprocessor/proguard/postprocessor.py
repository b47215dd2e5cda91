"""``ProGuardNodePostprocessor``: screen retrieved nodes before they reach the LLM.

Retrieved documents are untrusted input (indirect prompt injection, harmful content planted
in a corpus), so each node is judged like a tool result: as the user side of the
conversation, on its own. All nodes of one retrieval go to the guard in ONE batched call.
Unsafe nodes are dropped (default) or kept and flagged; every node gets its verdict in its
metadata (hidden from the LLM and the embedding text).
"""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle

from proguard_rails import Decision, Policy, ProGuard, ProGuardError
from proguard_rails._portal import run_sync
from proguard_rails.inputs import GuardRequest, build_request

from ._common import aemit, emit, resolve_guard

TOOL_NAME = "retriever"


class ProGuardNodePostprocessor(BaseNodePostprocessor):
    """Judge retrieved nodes (text, and images of ``ImageNode``) in one batched guard call.

    Args:
        guard: the ``ProGuard`` engine; by default one built from ``PROGUARD_*`` settings.
        mode: ``"drop"`` removes blocked nodes; ``"flag"`` keeps them with the verdict in metadata.
        policy: policy for node verdicts (default: the guard's).
        metadata_key: node metadata key that receives ``Decision.to_dict()``.
        metadata_mode: which text of a node is judged; ``LLM`` (default) is exactly what the LLM
            will read, metadata included.
        query_as_context: judge each node with the question as context (off by default: a
            document is judged on its own, so a benign document is not dropped because of
            the question, and verdicts cache across questions).
        screen_images: judge the image of an ``ImageNode`` with its text.
        allow_image_paths: read ``ImageNode.image_path`` from local disk. Paths are set by the
            application's ingestion pipeline, not by retrieved content, so they are trusted by
            default; turn this off if untrusted parties can write node metadata. ``image_url``
            is fetched only when the guard's ``allow_image_urls`` setting is on; otherwise the
            node cannot be judged and the policy's fail mode decides (closed: dropped).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    mode: Literal["drop", "flag"] = Field(default="drop", description="drop blocked nodes, or keep and flag them")
    policy: Policy | None = Field(default=None, exclude=True)
    metadata_key: str = "proguard"
    metadata_mode: MetadataMode = MetadataMode.LLM
    query_as_context: bool = False
    screen_images: bool = True
    allow_image_paths: bool = True

    _guard: ProGuard = PrivateAttr()

    def __init__(self, guard: ProGuard | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = resolve_guard(guard)

    @property
    def guard(self) -> ProGuard:
        return self._guard

    @classmethod
    def class_name(cls) -> str:
        return "ProGuardNodePostprocessor"

    # ------------------------------------------------------------------ requests
    def _images_of(self, node: Any) -> list[Any]:
        if not self.screen_images or not isinstance(node, ImageNode):
            return []
        if node.image:
            return [node.image]  # base64 (or a data URL)
        if node.image_path:
            return [node.image_path]
        if node.image_url:
            return [node.image_url]
        return []

    def _request(self, nws: NodeWithScore, query: QueryBundle | None) -> GuardRequest:
        node = nws.node
        text = node.get_content(metadata_mode=self.metadata_mode)
        context = query.query_str if (self.query_as_context and query is not None) else None
        base = self._guard.tool_result_request(TOOL_NAME, text, context)
        images = self._images_of(node)
        if not images:
            return base
        return build_request(base.user_text, None, images, settings=self._guard.settings,
                             allow_paths=self.allow_image_paths, kind="tool_result", metadata=base.metadata)

    # ------------------------------------------------------------------ screening
    async def _ajudge(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> list[Decision]:
        pol = self.policy or self._guard.policy
        decisions: list[Decision | None] = [None] * len(nodes)
        batch: list[GuardRequest] = []
        where: list[int] = []
        for i, nws in enumerate(nodes):
            try:
                batch.append(self._request(nws, query_bundle))
                where.append(i)
            except ProGuardError as exc:  # an unreadable or refused image, an empty node...
                decisions[i] = pol.decide_error(exc, "tool_result")
        if batch:
            for i, d in zip(where, await self._guard.acheck_batch(batch, policy=pol), strict=True):
                decisions[i] = d
        return [d for d in decisions if d is not None]

    async def ascreen(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None,
                      ) -> list[tuple[NodeWithScore, Decision]]:
        """Every node with its Decision; the nodes are copies carrying the verdict in metadata."""
        decisions = await self._ajudge(nodes, query_bundle)
        out = [(self._mark(n, d), d) for n, d in zip(nodes, decisions, strict=True)]
        for n, d in out:
            await aemit("node", d, node_id=n.node.node_id)
        return out

    def screen(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None,
               ) -> list[tuple[NodeWithScore, Decision]]:
        """Sync ``ascreen``; events are emitted on the caller's thread so they join its spans."""
        decisions = run_sync(self._ajudge(nodes, query_bundle))
        out = [(self._mark(n, d), d) for n, d in zip(nodes, decisions, strict=True)]
        for n, d in out:
            emit("node", d, node_id=n.node.node_id)
        return out

    def _mark(self, nws: NodeWithScore, decision: Decision) -> NodeWithScore:
        # A copy: the retrieved object may be shared with a docstore or a cache.
        node = nws.node.model_copy()
        node.metadata = {**node.metadata, self.metadata_key: decision.to_dict()}
        # The verdict must not leak into the LLM prompt or the embedding text.
        node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, self.metadata_key]
        node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, self.metadata_key]
        return NodeWithScore(node=node, score=nws.score)

    def _select(self, screened: list[tuple[NodeWithScore, Decision]]) -> list[NodeWithScore]:
        if self.mode == "flag":
            return [n for n, _ in screened]
        return [n for n, d in screened if d.allowed]

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore],
                                  query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes:
            return []
        return self._select(await self.ascreen(nodes, query_bundle))

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes:
            return []
        return self._select(self.screen(nodes, query_bundle))


__all__ = ["ProGuardNodePostprocessor"]
