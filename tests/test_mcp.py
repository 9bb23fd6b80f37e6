"""The MCP server, with the official `mcp` client over streamable HTTP: tools, JSON answers."""

from __future__ import annotations

import asyncio
import json

import pytest

import app as qsearch_app
from qsearch import Engine, Settings
from qsearch.types import HIT_FIELDS


@pytest.fixture(scope="module")
def served_with_shared_index(minilm, minilm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    library = Engine(Settings(embed_model=str(minilm_dir)), embedder=minilm)
    (folder / "handbook.md").write_text(
        "# Handbook\n\nThe office closes at 6pm on Fridays during summer."
    )
    library.add_files([folder / "handbook.md"])
    library.save(folder / "shared-index")
    demo = qsearch_app.create_app(
        Settings(embed_model=str(minilm_dir), rerank_model="none/none", device="cpu"),
        index_dir=str(folder / "shared-index"),
    )
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


async def _session(url: str, work):  # noqa: ANN001, ANN202
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with (
        streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await work(session)


def test_an_agent_lists_the_tools_and_finds_a_passage_of_the_shared_index(served_with_shared_index):
    async def work(session):  # noqa: ANN001, ANN202
        tools = {t.name: t for t in (await session.list_tools()).tools}
        result = await session.call_tool(
            "search",
            {
                "query": "When does the office close on Fridays?",
                "top_k": 3,
                "rerank": False,
                "instruction": qsearch_app.INSTRUCTIONS[0][1],
                "mode": "hybrid",
                "rerank_candidates": 10,
            },
        )
        return tools, result

    tools, result = asyncio.run(_session(served_with_shared_index, work))
    assert {"search", "add_documents"} <= set(tools)
    assert not {"remove_document", "clear_documents", "end_session"} & set(tools), (
        "page-only events stay private"
    )
    assert (
        "Args" not in tools["search"].description and "add_documents" in tools["search"].description
    )
    assert set(tools["search"].inputSchema["properties"]) >= {"query", "top_k", "mode"}
    assert not result.isError, result.content
    text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    assert "<" not in text, "no HTML for an agent to pay for"
    hits = json.loads(text)  # the hits as data, in Hit.to_dict's vocabulary, and nothing else
    assert list(hits[0]) == list(HIT_FIELDS)
    assert hits[0]["source"].endswith("handbook.md") and "6pm on Fridays" in hits[0]["text"]
    description = tools["search"].description
    assert all(score in description for score in ("overall", "meaning", "keywords", "rerank"))
